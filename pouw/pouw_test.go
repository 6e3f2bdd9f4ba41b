package pouw_test

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
)

func TestJobIDMatchesTestVectors(t *testing.T) {
	raw, err := os.ReadFile("../docs/test-vectors/job-ids.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Vectors []struct {
			Name       string       `json:"name"`
			IntentID   pouw.Hash    `json:"intent_id"`
			TraceHash  pouw.Hash    `json:"trace_hash"`
			Tier       pouw.JobTier `json:"tier"`
			CreatedSeq uint64       `json:"created_seq"`
			JobID      string       `json:"job_id"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Vectors) < 8 {
		t.Fatalf("want at least 8 vectors, have %d", len(file.Vectors))
	}
	seen := map[string]bool{}
	for _, v := range file.Vectors {
		t.Run(v.Name, func(t *testing.T) {
			got := pouw.JobID(v.IntentID, v.TraceHash, v.Tier, v.CreatedSeq)
			if got != v.JobID {
				t.Fatalf("JobID = %s, want %s", got, v.JobID)
			}
			if err := pouw.ValidateJobID(got); err != nil {
				t.Fatal(err)
			}
		})
		if seen[v.JobID] {
			t.Errorf("duplicate job id %s", v.JobID)
		}
		seen[v.JobID] = true
	}
}

func TestJobIDChangesWithEveryInput(t *testing.T) {
	var a, b pouw.Hash
	b[31] = 1
	base := pouw.JobID(a, a, pouw.TierMacro, 1)
	for name, other := range map[string]string{
		"intent": pouw.JobID(b, a, pouw.TierMacro, 1),
		"trace":  pouw.JobID(a, b, pouw.TierMacro, 1),
		"tier":   pouw.JobID(a, a, pouw.TierFull, 1),
		"seq":    pouw.JobID(a, a, pouw.TierMacro, 2),
	} {
		if other == base {
			t.Errorf("changing %s did not change the job id", name)
		}
	}
}

func TestParseTier(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    pouw.JobTier
		wantErr bool
	}{
		{"micro", pouw.TierMicro, false},
		{"macro", pouw.TierMacro, false},
		{"full", pouw.TierFull, false},
		{"Macro", 0, true},
		{"", 0, true},
		{"batch", 0, true},
	} {
		got, err := pouw.ParseTier(tc.in)
		if (err != nil) != tc.wantErr || (!tc.wantErr && got != tc.want) {
			t.Errorf("ParseTier(%q) = %v, %v", tc.in, got, err)
		}
		if err != nil && !errors.Is(err, pouw.ErrInvalid) {
			t.Errorf("ParseTier(%q) error %v is not ErrInvalid", tc.in, err)
		}
	}
	if _, err := pouw.JobTier(3).MarshalText(); err == nil {
		t.Error("tier 3 marshalled")
	}
}

func TestParseHashRejectsMalformed(t *testing.T) {
	for _, in := range []string{"", "00", strings.Repeat("g", 64), strings.Repeat("0", 63), strings.Repeat("0", 65)} {
		if _, err := pouw.ParseHash(in); !errors.Is(err, pouw.ErrInvalid) {
			t.Errorf("ParseHash(%q) err = %v, want ErrInvalid", in, err)
		}
	}
	h, err := pouw.ParseHash(strings.Repeat("AB", 32))
	if err != nil || h.String() != strings.Repeat("ab", 32) {
		t.Errorf("uppercase hex: %v %s", err, h)
	}
}

func TestValidateJobID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"d154a4ad687a61b605880ebffdd561ef", true},
		{"D154A4AD687A61B605880EBFFDD561EF", false},
		{"d154a4ad687a61b605880ebffdd561e", false},
		{"../../etc/passwd0000000000000000", false},
	} {
		if err := pouw.ValidateJobID(tc.id); (err == nil) != tc.ok {
			t.Errorf("ValidateJobID(%q) = %v", tc.id, err)
		}
	}
}

func TestProofJobJSONUsesSpecFieldNames(t *testing.T) {
	j := pouw.ProofJob{JobID: "d154a4ad687a61b605880ebffdd561ef", Tier: pouw.TierFull, State: pouw.StatePending, Backend: "stark", MaxRetries: 3}
	b, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"job_id", "tier", "intent_id", "trace_hash", "trace_ref", "fee_budget", "reward_budget",
		"created_at_ms", "created_seq", "lease_expires_at_ms", "deadline_ms", "max_retries", "attempts", "backend", "state"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing from %s", k, b)
		}
	}
	if m["tier"] != "full" {
		t.Errorf("tier = %v", m["tier"])
	}
	var back pouw.ProofJob
	if err := json.Unmarshal(b, &back); err != nil || back.JobID != j.JobID || back.Tier != j.Tier {
		t.Errorf("round trip: %v %+v", err, back)
	}
}

func TestProofJobValidate(t *testing.T) {
	ok := pouw.ProofJob{JobID: "d154a4ad687a61b605880ebffdd561ef", State: pouw.StatePending, Backend: "stark", MaxRetries: 1, FeeBudget: 10, RewardBudget: 10}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*pouw.ProofJob){
		"reward above fee": func(j *pouw.ProofJob) { j.RewardBudget = 11 },
		"fee above 2^53":   func(j *pouw.ProofJob) { j.FeeBudget = pouw.MaxAmount + 1 },
		"zero retries":     func(j *pouw.ProofJob) { j.MaxRetries = 0 },
		"no backend":       func(j *pouw.ProofJob) { j.Backend = "" },
		"bad state":        func(j *pouw.ProofJob) { j.State = "lost" },
		"bad tier":         func(j *pouw.ProofJob) { j.Tier = 9 },
	} {
		j := ok
		mut(&j)
		if err := j.Validate(); !errors.Is(err, pouw.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
}

func TestBatchIntentIDIsOrderSensitive(t *testing.T) {
	a, b := pouw.Hash{1}, pouw.Hash{2}
	if pouw.BatchIntentID([]pouw.Hash{a, b}) == pouw.BatchIntentID([]pouw.Hash{b, a}) {
		t.Fatal("batch intent id ignores order")
	}
}
