package api

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
)

// requestTypes are the bodies the API decodes from the network.
var requestTypes = []func() any{
	func() any { return new(pouw.ClaimRequest) },
	func() any { return new(pouw.IngestRequest) },
	func() any { return new(pouw.LeaseRequest) },
	func() any { return new(pouw.SubmitRequest) },
	func() any { return new(pouw.FailRequest) },
	func() any { return new(pouw.RegisterProverRequest) },
	func() any { return new(pouw.DepositRequest) },
	func() any { return new(RotateTokenRequest) },
	func() any { return new(SuspendRequest) },
}

// FuzzDecodeRequests feeds arbitrary bytes to the strict decoder of every
// request body: it must never panic, and whatever it accepts must survive a
// round trip (encode, decode strictly again, same value). The seed corpus
// runs in every go test; run `go test -fuzz FuzzDecodeRequests` by hand
// after changing a decoder, and keep what it finds in testdata/fuzz.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"tiers":["macro","micro"],"backends":["stark"],"max_trace_bytes":1024,"min_reward":5}`,
		`{"tier":"full","intent_id":"` + hex64 + `","trace_hash":"` + hex64 + `","fee_budget":10,"reward_budget":5,"deadline_ms":1,"max_retries":3,"depends_on":["0123456789abcdef0123456789abcdef"]}`,
		`{"lease_token":"abc"}`,
		`{"lease_token":"abc","proof":"AAEC"}`,
		`{"lease_token":"abc","reason":"oom"}`,
		`{"prover_id":"gpu-1"}`,
		`{"amount":9007199254740991,"memo":"x"}`,
		`{"tiers":"full"}`, `{"tiers":[0]}`, `{"amount":-1}`, `{"amount":1e3}`, `{"proof":"!!"}`,
		`{} {}`, `{"a":1}`, `[]`, `null`, ``, `{"lease_token":"\u0000"}`, `{"LEASE_TOKEN":"x"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, mk := range requestTypes {
			v := mk()
			if err := decodeStrict(data, v); err != nil {
				continue
			}
			enc, err := json.Marshal(v)
			if err != nil {
				// A value the decoder accepted but cannot encode (a tier
				// byte out of range from a base64 string) must be caught
				// by the handlers' validation; it is not a decoder bug.
				continue
			}
			w := mk()
			if err := decodeStrict(enc, w); err != nil {
				t.Fatalf("%T: accepted %q, but not its own encoding %q: %v", v, data, enc, err)
			}
			if !reflect.DeepEqual(v, w) {
				t.Fatalf("%T: round trip changed the value: %+v vs %+v", v, v, w)
			}
		}
	})
}

const hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"

func TestDecodeStrictRejectsTrailingDataAndUnknownFields(t *testing.T) {
	for _, in := range []string{`{"lease_token":"a"} {}`, `{"lease_token":"a","x":1}`, ``, `   `, `{"lease_token":"a"}]`,
		`{"LEASE_TOKEN":"a"}`, `{"Lease_Token":"a"}`, `{"lease_token":"a","lease_token":"b"}`} {
		var v pouw.LeaseRequest
		if err := decodeStrict([]byte(in), &v); err == nil {
			t.Errorf("decodeStrict(%q) accepted", in)
		}
	}
	var v pouw.LeaseRequest
	if err := decodeStrict([]byte(" {\"lease_token\":\"a\"}\n"), &v); err != nil || v.LeaseToken != "a" {
		t.Errorf("whitespace around a valid object: %v", err)
	}
}
