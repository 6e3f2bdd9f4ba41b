package client

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// FuzzReadSSE feeds arbitrary bytes to the event-stream parser and the
// dispatcher behind it, as a hostile or broken coordinator (or a network
// attacker without TLS) could: no panic, no line beyond maxSSELine
// accepted, and every event handed to the handler has the id the stream
// gave it. A well-formed stream built from the input round-trips. The seed
// corpus (below and testdata/fuzz/FuzzReadSSE) runs in every go test.
func FuzzReadSSE(f *testing.F) {
	for _, seed := range []string{
		"id: 3\nevent: open\ndata: {}\n\n",
		"id: 4\nevent: job.claimed\ndata: {\"id\":4,\"type\":\"job.claimed\",\"at_ms\":1}\n\n",
		"id: 9\nevent: reset\ndata: {\"resume_after\":8,\"reason\":\"x\"}\n\n",
		": heartbeat\n\n", "data: a\ndata: b\n\n", "id: x\nevent: e\n\n", "id: 1\ndata: {\n\n",
		"id:18446744073709551615\nevent:pool.deposit\ndata:{\"id\":1,\"type\":\"pool.deposit\",\"at_ms\":0}\n\n",
		"\r\n\r\n", strings.Repeat("d", 1000),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &Client{}
		var last uint64
		var have bool
		var got []pouw.Event
		h := StreamHandler{Event: func(ev pouw.Event) error { got = append(got, ev); return nil }}
		err := readSSE(bytes.NewReader(in), func(id, typ, data string) error {
			if len(id)+len(typ)+len(data) > len(in) {
				t.Fatalf("dispatched more bytes than were read")
			}
			before := last
			if err := c.dispatch(id, typ, data, &last, &have, h); err != nil {
				var he handlerError
				if !errors.As(err, &he) {
					t.Fatalf("dispatch error %v is not a handlerError", err)
				}
				if last != before {
					t.Fatalf("a refused event moved the position from %d to %d", before, last)
				}
				return nil
			}
			if n, err := strconv.ParseUint(id, 10, 64); err != nil || n != last {
				t.Fatalf("position %d after event id %q", last, id)
			}
			return nil
		})
		if err != nil && !errors.Is(err, bufio.ErrTooLong) {
			t.Fatalf("readSSE: %v", err)
		}
		// Round trip: the events accepted, written back as a stream, are
		// read back the same.
		var buf bytes.Buffer
		for _, ev := range got {
			data, err := json.Marshal(ev)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&buf, "id: %d\nevent: e\ndata: %s\n\n", ev.ID, data)
		}
		var again []pouw.Event
		last, have = 0, false
		h2 := StreamHandler{Event: func(ev pouw.Event) error { again = append(again, ev); return nil }}
		if err := readSSE(&buf, func(id, typ, data string) error { return c.dispatch(id, typ, data, &last, &have, h2) }); err != nil {
			t.Fatalf("re-reading accepted events: %v", err)
		}
		if fmt.Sprint(again) != fmt.Sprint(got) {
			t.Fatalf("round trip changed the events: %v vs %v", got, again)
		}
	})
}
