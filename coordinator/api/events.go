package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// hub follows the store's event log for this coordinator. One goroutine
// polls the store (woken early by this coordinator's own writes) and keeps
// the most recent events in a ring; every stream client reads at its own
// pace from the ring, or from the store when it is further behind, so a slow
// client holds no lock and no buffer that others wait on. Each client is
// only woken when something new arrived.
type hub struct {
	store   store.Store
	log     *slog.Logger
	poll    time.Duration
	ringCap int
	onEvent func(pouw.Event)

	kick  chan struct{}
	ready chan struct{}
	done  chan struct{}

	mu       sync.Mutex
	ring     []pouw.Event // every event with id > ringFrom that the hub has seen, in order
	ringFrom uint64
	head     uint64        // the newest event id seen
	changed  chan struct{} // closed (and replaced) when events arrive
}

func newHub(st store.Store, log *slog.Logger, poll time.Duration, ringCap int, onEvent func(pouw.Event)) *hub {
	return &hub{
		store: st, log: log, poll: poll, ringCap: ringCap, onEvent: onEvent,
		kick: make(chan struct{}, 1), ready: make(chan struct{}), done: make(chan struct{}),
		changed: make(chan struct{}),
	}
}

// poke asks the hub to read the log now (after a write by this coordinator).
func (h *hub) poke() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// run follows the log until ctx ends, then closes done so open streams end.
func (h *hub) run(ctx context.Context) {
	defer close(h.done)
	for {
		head, err := findHead(ctx, h.store)
		if err == nil {
			h.mu.Lock()
			h.head, h.ringFrom = head, head
			h.mu.Unlock()
			close(h.ready)
			break
		}
		h.log.Warn("event stream: cannot read the event log yet", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	t := time.NewTicker(h.poll)
	defer t.Stop()
	// A busy coordinator pokes the hub on every write; reading the log at
	// most every minGap turns thousands of pokes a second into a few reads
	// (each read takes every new event), so following the log costs the
	// store little whatever the request rate.
	minGap := min(h.poll, 20*time.Millisecond)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-h.kick:
		}
		start := time.Now()
		if err := h.pull(ctx); err != nil && ctx.Err() == nil {
			h.log.Warn("event stream: reading the event log", "err", err)
		}
		if rest := minGap - time.Since(start); rest > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(rest):
			}
		}
	}
}

const eventPage = 512

func (h *hub) pull(ctx context.Context) error {
	for {
		h.mu.Lock()
		after := h.head
		h.mu.Unlock()
		evs, err := h.store.Events(ctx, after, eventPage)
		if errors.Is(err, store.ErrEventsTruncated) {
			// Retention overtook the hub itself (a long store outage):
			// skip to the newest event; clients behind it get reset.
			head, herr := findHead(ctx, h.store)
			if herr != nil {
				return herr
			}
			h.mu.Lock()
			h.ring, h.ringFrom, h.head = nil, head, head
			h.mu.Unlock()
			return nil
		}
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			return nil
		}
		for _, ev := range evs {
			h.onEvent(ev)
		}
		h.mu.Lock()
		h.ring = append(h.ring, evs...)
		if over := len(h.ring) - h.ringCap; over > 0 {
			h.ringFrom = h.ring[over-1].ID
			h.ring = append(h.ring[:0:0], h.ring[over:]...)
		}
		h.head = evs[len(evs)-1].ID
		close(h.changed)
		h.changed = make(chan struct{})
		h.mu.Unlock()
		if len(evs) < eventPage {
			return nil
		}
	}
}

// since returns up to limit events with id > after, with the channel that
// will be closed when more arrive (taken before reading, so nothing slips
// between the read and the wait).
func (h *hub) since(ctx context.Context, after uint64, limit int) ([]pouw.Event, <-chan struct{}, error) {
	h.mu.Lock()
	changed := h.changed
	if after >= h.ringFrom {
		var out []pouw.Event
		// The ring is sorted by id: find the first event past `after`.
		lo, hi := 0, len(h.ring)
		for lo < hi {
			mid := (lo + hi) / 2
			if h.ring[mid].ID <= after {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		end := min(lo+limit, len(h.ring))
		out = append(out, h.ring[lo:end]...)
		h.mu.Unlock()
		return out, changed, nil
	}
	h.mu.Unlock()
	evs, err := h.store.Events(ctx, after, limit)
	return evs, changed, err
}

func (h *hub) headID() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.head
}

// findHead finds the newest event id of the store's log with a logarithmic
// number of reads (the Store has no "last id" method): Events(after=x, 1) is
// empty exactly when x >= head, and ErrEventsTruncated only below the
// retention horizon, which is below head.
func findHead(ctx context.Context, st store.Store) (uint64, error) {
	beyond := func(x uint64) (bool, error) {
		evs, err := st.Events(ctx, x, 1)
		if errors.Is(err, store.ErrEventsTruncated) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		return len(evs) == 0, nil
	}
	if ok, err := beyond(0); err != nil || ok {
		return 0, err
	}
	lo, hi := uint64(0), uint64(1) // invariant: !beyond(lo)
	for {
		ok, err := beyond(hi)
		if err != nil {
			return 0, err
		}
		if ok {
			break
		}
		lo, hi = hi, hi*2
		if hi == 0 || hi > 1<<62 {
			return 0, errors.New("event ids out of range")
		}
	}
	for hi-lo > 1 { // !beyond(lo), beyond(hi)
		mid := lo + (hi-lo)/2
		ok, err := beyond(mid)
		if err != nil {
			return 0, err
		}
		if ok {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi, nil
}

// handleEvents serves GET /v1/pouw/events as Server-Sent Events. Each event
// carries its id, so a client that reconnects with Last-Event-ID (or
// ?after=) gets every later event exactly once; when the position is older
// than the retention it gets a `reset` event first. Without either, the
// stream starts at the newest event. Comment lines keep idle connections
// open through proxies.
func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request, _ caller) error {
	select {
	case <-s.hub.ready:
	case <-r.Context().Done():
		return nil
	case <-time.After(10 * time.Second):
		return errorf(http.StatusServiceUnavailable, pouw.CodeUnavailable, "the event log cannot be read yet")
	}
	cursor := s.hub.headID()
	pos := r.Header.Get("Last-Event-ID")
	if pos == "" {
		pos = r.URL.Query().Get("after")
	}
	if pos != "" {
		n, err := strconv.ParseUint(pos, 10, 64)
		if err != nil {
			return errorf(http.StatusBadRequest, pouw.CodeInvalid, "Last-Event-ID/after must be an event id, got %q", pos)
		}
		cursor = n
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	s.metrics.streamClients.Inc()
	defer s.metrics.streamClients.Dec()

	// A client that stops reading gets its connection closed after
	// writeWait instead of tying up this goroutine forever.
	flush := func() error {
		_ = rc.SetWriteDeadline(time.Now().Add(s.opts.StreamWriteTimeout))
		return rc.Flush()
	}
	// The opening event tells the client its position, so a reconnect
	// before the first real event resumes from here.
	if _, err := fmt.Fprintf(w, "retry: 2000\nid: %d\nevent: open\ndata: {\"after\":%d}\n\n", cursor, cursor); err != nil {
		return nil
	}
	if err := flush(); err != nil {
		return nil
	}
	heartbeat := time.NewTicker(s.opts.Heartbeat)
	defer heartbeat.Stop()
	ctx := r.Context()
	for {
		evs, changed, err := s.hub.since(ctx, cursor, 256)
		if errors.Is(err, store.ErrEventsTruncated) {
			head := s.hub.headID()
			data, _ := json.Marshal(pouw.ResetEvent{ResumeAfter: head,
				Reason: fmt.Sprintf("events after %d are past the retention; resynchronise and continue from %d", cursor, head)})
			if _, err := fmt.Fprintf(w, "id: %d\nevent: reset\ndata: %s\n\n", head, data); err != nil {
				return nil
			}
			cursor = head
			if err := flush(); err != nil {
				return nil
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("event stream: read", "err", err)
			// Tell the client and end; it reconnects from its last id.
			_, _ = fmt.Fprintf(w, ": error reading events; reconnect\n\n")
			_ = flush()
			return nil
		}
		for _, ev := range evs {
			data, _ := json.Marshal(ev)
			if _, err := fmt.Fprintf(w, "id: %d\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, data); err != nil {
				return nil
			}
			cursor = ev.ID
		}
		if len(evs) > 0 {
			if err := flush(); err != nil {
				return nil
			}
			if len(evs) == 256 {
				continue
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.hub.done:
			return nil
		case <-changed:
		case <-heartbeat.C:
			if _, err := fmt.Fprint(w, ": heartbeat\n\n"); err != nil {
				return nil
			}
			if err := flush(); err != nil {
				return nil
			}
		}
	}
}
