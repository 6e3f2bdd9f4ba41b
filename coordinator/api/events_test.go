package api_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/client"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// makeEvents causes n events (pool deposits) through the API.
func (e *env) makeEvents(n int) {
	e.t.Helper()
	// Straight into the store, one event each (a deposit through the API
	// appends its audit event too); the hub finds them by polling.
	for i := 0; i < n; i++ {
		if _, err := e.st.Deposit(context.Background(), 1, "test"); err != nil {
			e.t.Fatal(err)
		}
	}
}

// allEventIDs reads the store's whole event log.
func (e *env) allEventIDs() []uint64 {
	e.t.Helper()
	evs, err := e.st.Events(context.Background(), 0, 100000)
	if err != nil {
		e.t.Fatal(err)
	}
	ids := make([]uint64, len(evs))
	for i, ev := range evs {
		ids[i] = ev.ID
	}
	return ids
}

// sseEvent is one parsed SSE event.
type sseEvent struct {
	id, typ, data string
}

// readSSE reads events from an open stream until want of them (not counting
// the opening event) arrived or the deadline passed.
func readSSE(t *testing.T, sc *bufio.Scanner, want int, deadline time.Duration) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	done := make(chan struct{})
	timer := time.AfterFunc(deadline, func() { close(done) })
	defer timer.Stop()
	for len(out) < want && sc.Scan() {
		select {
		case <-done:
			t.Fatalf("only %d of %d events within %v", len(out), want, deadline)
		default:
		}
		line := sc.Text()
		switch {
		case line == "":
			if cur.typ != "" && cur.typ != "open" {
				out = append(out, cur)
			}
			cur = sseEvent{}
		case strings.HasPrefix(line, "id: "):
			cur.id = line[4:]
		case strings.HasPrefix(line, "event: "):
			cur.typ = line[7:]
		case strings.HasPrefix(line, "data: "):
			cur.data = line[6:]
		}
	}
	return out
}

func openStream(t *testing.T, e *env, lastID string) (*http.Response, *bufio.Scanner) {
	t.Helper()
	req, _ := http.NewRequest("GET", e.url+"/v1/pouw/events", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, bufio.NewScanner(resp.Body)
}

func TestEventStreamResumesAfterDroppedConnection(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) { testStreamResume(t, b) })
	}
}

func testStreamResume(t *testing.T, b backend) {
	e := newEnv(t, b, envOptions{})
	e.makeEvents(5)
	resp, sc := openStream(t, e, "0")
	first := readSSE(t, sc, 5, 5*time.Second)
	resp.Body.Close() // the connection drops after the fifth event
	e.makeEvents(7)   // these happen while the client is away
	lastSeen := first[len(first)-1].id
	_, sc = openStream(t, e, lastSeen)
	rest := readSSE(t, sc, 7, 5*time.Second)

	var got []uint64
	for _, ev := range append(first, rest...) {
		id, err := strconv.ParseUint(ev.id, 10, 64)
		if err != nil || ev.typ != string(pouw.EventPoolDeposit) {
			t.Fatalf("event %+v", ev)
		}
		got = append(got, id)
	}
	want := e.allEventIDs()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("events across the reconnect: %v, want every event once: %v", got, want)
	}
}

// TestClientFollowSurvivesServerDroppingConnections: the Go client
// reconnects on its own with Last-Event-ID; across several forced drops it
// delivers every event exactly once.
func TestClientFollowSurvivesServerDroppingConnections(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	c, err := client.New(e.url, client.Options{Token: adminToken, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var got []uint64
	start := uint64(0)
	followed := make(chan error, 1)
	go func() {
		_, err := c.Follow(ctx, &start, client.StreamHandler{Event: func(ev pouw.Event) error {
			mu.Lock()
			got = append(got, ev.ID)
			mu.Unlock()
			return nil
		}})
		followed <- err
	}()
	total := 0
	for round := 0; round < 4; round++ {
		e.makeEvents(5)
		total += 5
		waitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) >= total })
		e.hs.CloseClientConnections()
	}
	cancel()
	<-followed
	mu.Lock()
	defer mu.Unlock()
	if want := e.allEventIDs(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("followed %v, want %v", got, want)
	}
}

func TestEventStreamSendsResetBeyondRetention(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{maxEvents: 10, eventRing: 5})
	e.makeEvents(30)
	// makeEvents writes to the store; wait until the hub has read all 30.
	var sc *bufio.Scanner
	var evs []sseEvent
	waitFor(t, func() bool {
		var resp *http.Response
		resp, sc = openStream(t, e, "1")
		evs = readSSE(t, sc, 1, 5*time.Second)
		if evs[0].id != "30" {
			resp.Body.Close()
			return false
		}
		return true
	})
	if evs[0].typ != "reset" || !strings.Contains(evs[0].data, "resume_after") {
		t.Fatalf("first event %+v, want reset", evs[0])
	}
	// 30 events with ids from 1, of which the last 10 are kept.
	kept, err := e.st.Events(context.Background(), 25, 100)
	if err != nil || len(kept) == 0 {
		t.Fatalf("events after 25: %v %v", kept, err)
	}
	head := kept[len(kept)-1].ID
	rid, err := strconv.ParseUint(evs[0].id, 10, 64)
	// The reset resumes at the newest event this coordinator has seen,
	// which may trail the store's by a poll.
	if err != nil || rid > head || rid < kept[0].ID {
		t.Fatalf("reset id %s, want one within the retained events %d..%d", evs[0].id, kept[0].ID, head)
	}
	// After the reset the stream goes on with every later event, once.
	e.makeEvents(1)
	next := readSSE(t, sc, int(head+1-rid), 5*time.Second)
	for i, ev := range next {
		if ev.id != strconv.FormatUint(rid+1+uint64(i), 10) {
			t.Fatalf("after the reset at %d: events %+v", rid, next)
		}
	}
}

func TestEventStreamHeartbeats(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	_, sc := openStream(t, e, "")
	deadline := time.Now().Add(5 * time.Second)
	for sc.Scan() {
		if sc.Text() == ": heartbeat" {
			return
		}
		if time.Now().After(deadline) {
			break
		}
	}
	t.Fatal("no heartbeat on an idle stream")
}

// TestSlowStreamClientDoesNotBlockOthers: a client that connects and never
// reads must not delay the events of a client that does.
func TestSlowStreamClientDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t, boltBackend(), envOptions{})
	u, _ := url.Parse(e.url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /v1/pouw/events?after=0 HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\n\r\n", u.Host, adminToken)
	// ... and never reads.
	_, sc := openStream(t, e, "0")
	e.makeEvents(300)
	if got := readSSE(t, sc, 300, 10*time.Second); len(got) != 300 {
		t.Fatalf("fast client got %d events", len(got))
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
