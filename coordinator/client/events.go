package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// StreamHandler receives what the event stream delivers. Event is called for
// every event in id order; Reset (optional) when the requested position was
// past the retention and the caller must resynchronise. Returning an error
// from either ends Follow with that error.
type StreamHandler struct {
	Event func(pouw.Event) error
	Reset func(pouw.ResetEvent) error
}

// Follow reads the event stream from after (nil: from the newest event on)
// until ctx ends or a handler fails. A dropped connection is re-opened with
// Last-Event-ID, so no event is lost or repeated within the retention. It
// returns the id of the last event delivered.
func (c *Client) Follow(ctx context.Context, after *uint64, h StreamHandler) (uint64, error) {
	var last uint64
	have := after != nil
	if have {
		last = *after
	}
	fails := 0
	for {
		delivered, err := c.followOnce(ctx, &last, &have, h)
		if ctx.Err() != nil {
			return last, ctx.Err()
		}
		var he handlerError
		if errors.As(err, &he) {
			return last, he.err
		}
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.Status != http.StatusServiceUnavailable {
			return last, err
		}
		if delivered {
			fails = 0
		}
		fails++
		if fails > c.opts.MaxRetries+1 && !delivered {
			return last, fmt.Errorf("client: event stream: %w", err)
		}
		if err := c.sleep(ctx, min(fails, 6)); err != nil {
			return last, err
		}
	}
}

type handlerError struct{ err error }

func (e handlerError) Error() string { return e.err.Error() }

func (c *Client) followOnce(ctx context.Context, last *uint64, have *bool, h StreamHandler) (bool, error) {
	rq := request{method: "GET", path: v1 + "/events", mode: retryNotSentOnly}
	if *have {
		rq.header = http.Header{"Last-Event-ID": {strconv.FormatUint(*last, 10)}, "Accept": {"text/event-stream"}}
	}
	resp, err := c.send(ctx, rq)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	delivered := false
	err = readSSE(resp.Body, func(id, typ, data string) error {
		if err := c.dispatch(id, typ, data, last, have, h); err != nil {
			return err
		}
		delivered = true
		return nil
	})
	if err != nil {
		return delivered, err
	}
	return delivered, errors.New("event stream closed by the coordinator")
}

// maxSSELine bounds one line of the event stream (a stream from the network
// must not grow a buffer without end).
const maxSSELine = 1 << 20

// readSSE parses a Server-Sent Events stream from r and calls dispatch with
// the id, type and data of every event, until r ends (nil) or dispatch or
// the reader fails. Comment lines are skipped; a line longer than
// maxSSELine is an error. FuzzReadSSE fuzzes it.
func readSSE(r io.Reader, dispatch func(id, typ, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxSSELine)
	var id, typ string
	var data strings.Builder
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			if data.Len() > 0 || typ != "" {
				if err := dispatch(id, typ, data.String()); err != nil {
					return err
				}
			}
			id, typ = "", ""
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			id = value
		case "event":
			typ = value
		case "data":
			if data.Len() > 0 {
				data.WriteByte('\n')
			}
			data.WriteString(value)
		}
	}
	return sc.Err()
}

func (c *Client) dispatch(id, typ, data string, last *uint64, have *bool, h StreamHandler) error {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return handlerError{fmt.Errorf("client: event without a numeric id: %q", id)}
	}
	if typ == "open" {
		// The stream's starting position: a reconnect before the first
		// event resumes from here rather than from a newer head.
		*last, *have = n, true
		return nil
	}
	if typ == "reset" {
		var r pouw.ResetEvent
		if err := json.Unmarshal([]byte(data), &r); err != nil {
			return handlerError{fmt.Errorf("client: malformed reset event: %w", err)}
		}
		*last, *have = n, true
		if h.Reset != nil {
			if err := h.Reset(r); err != nil {
				return handlerError{err}
			}
		}
		return nil
	}
	var ev pouw.Event
	if err := json.Unmarshal([]byte(data), &ev); err != nil {
		return handlerError{fmt.Errorf("client: malformed event %d: %w", n, err)}
	}
	*last, *have = n, true
	if h.Event != nil {
		if err := h.Event(ev); err != nil {
			return handlerError{err}
		}
	}
	return nil
}
