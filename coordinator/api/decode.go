package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pouwfarm/pouwfarm/coordinator/store"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// decodeStrict decodes exactly one JSON value into v: unknown fields,
// trailing data and a missing body are errors. Every request body of the API
// goes through it (fuzzed by FuzzDecodeRequests).
func decodeStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return errors.New("empty body, want a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON object")
	}
	return checkKeys(data, v)
}

// checkKeys closes two gaps of encoding/json's strict mode for the flat
// request objects of this API: it matches field names case-insensitively
// ("LEASE_TOKEN" fills lease_token) and lets a repeated key overwrite the
// first. Both would let two parsers of one body disagree; here a key must
// be spelled exactly as documented, and appear once.
func checkKeys(data []byte, v any) error {
	known := jsonFieldNames(reflect.TypeOf(v))
	if known == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // the opening brace
		return err
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if !known[key] {
			return fmt.Errorf("json: unknown field %q", key)
		}
		if seen[key] {
			return fmt.Errorf("json: field %q given twice", key)
		}
		seen[key] = true
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return err
		}
	}
	return nil
}

var fieldNames sync.Map // reflect.Type -> map[string]bool

// jsonFieldNames returns the JSON names of a struct's fields (nil for
// anything but a pointer to a struct).
func jsonFieldNames(t reflect.Type) map[string]bool {
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	if m, ok := fieldNames.Load(t); ok {
		return m.(map[string]bool)
	}
	m := map[string]bool{}
	st := t.Elem()
	for i := 0; i < st.NumField(); i++ {
		f := st.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		m[name] = true
	}
	fieldNames.Store(t, m)
	return m
}

// readJSON checks the content type, reads at most limit bytes and decodes
// strictly.
func readJSON(w http.ResponseWriter, r *http.Request, limit int64, v any) error {
	if err := wantContentType(r, "application/json"); err != nil {
		return err
	}
	// The server has no overall ReadTimeout (blob uploads may be long); a
	// JSON body that trickles in slower than this is cut off instead.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(jsonReadTimeout))
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return errorf(http.StatusRequestEntityTooLarge, pouw.CodeTooLarge, "request body exceeds %d bytes", limit)
		}
		return errorf(http.StatusBadRequest, pouw.CodeBadRequest, "reading body: %v", err)
	}
	if err := decodeStrict(data, v); err != nil {
		if errors.Is(err, pouw.ErrInvalid) {
			return errorf(http.StatusBadRequest, pouw.CodeInvalid, "malformed JSON body: %w", err)
		}
		return errorf(http.StatusBadRequest, pouw.CodeBadRequest, "malformed JSON body: %v", err)
	}
	return nil
}

func wantContentType(r *http.Request, want string) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != want {
		return errorf(http.StatusUnsupportedMediaType, pouw.CodeUnsupportedMedia,
			"Content-Type must be %s, got %q", want, ct)
	}
	return nil
}

// jsonReadTimeout bounds how long reading one JSON body may take.
const jsonReadTimeout = 30 * time.Second

// Paging bounds of the list routes.
const (
	defaultPageLimit = 50
	maxPageLimit     = 1000
)

// pageQuery parses ?limit=&cursor=&tier=.
func pageQuery(r *http.Request) (store.PageQuery, error) {
	q := r.URL.Query()
	pq := store.PageQuery{Limit: defaultPageLimit, Cursor: q.Get("cursor")}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxPageLimit {
			return pq, errorf(http.StatusBadRequest, pouw.CodeInvalid, "limit must be an integer from 1 to %d, got %q", maxPageLimit, s)
		}
		pq.Limit = n
	}
	if len(pq.Cursor) > 512 {
		return pq, errorf(http.StatusBadRequest, pouw.CodeInvalid, "cursor too long")
	}
	if s := q.Get("tier"); s != "" {
		t, err := pouw.ParseTier(s)
		if err != nil {
			return pq, errorf(http.StatusBadRequest, pouw.CodeInvalid, "tier: %w", err)
		}
		pq.Tier = &t
	}
	return pq, nil
}

// jobIDParam returns the {id} path value after checking its form, so a
// malformed id is a 400 and never reaches the store.
func jobIDParam(r *http.Request) (string, error) {
	id := r.PathValue("id")
	if err := pouw.ValidateJobID(id); err != nil {
		return "", errorf(http.StatusBadRequest, pouw.CodeInvalid, "job id: %w", err)
	}
	return id, nil
}
