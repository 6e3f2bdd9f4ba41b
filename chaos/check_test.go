package chaos_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/pouwfarm/pouwfarm/chaos"
	"github.com/pouwfarm/pouwfarm/pouw"
)

// healthy is a consistent deployment: one completed, one pending, one
// leased and one dead job, two provers, a balanced pool.
func healthy() chaos.Snapshot {
	job := func(n int, st pouw.State, reward uint64) pouw.ProofJob {
		return pouw.ProofJob{JobID: fmt.Sprintf("%032x", n), CreatedSeq: uint64(n), State: st,
			RewardBudget: reward, FeeBudget: reward, MaxRetries: 3}
	}
	done := job(1, pouw.StateCompleted, 100)
	done.ProverID, done.ProofRef = "farm-a", "ab"
	pend := job(2, pouw.StatePending, 200)
	lease := job(3, pouw.StateLeased, 300)
	lease.ProverID = "farm-b"
	dead := job(4, pouw.StateDead, 400)
	dead.Attempts, dead.DeadReason = 2, "max_retries reached"
	s := chaos.Snapshot{
		Ingested: []string{done.JobID, pend.JobID, lease.JobID, dead.JobID},
		Jobs:     map[string]pouw.ProofJob{},
		History: map[string][]pouw.Attempt{
			done.JobID: {{Number: 1, Outcome: pouw.OutcomeExpired}, {Number: 2, Outcome: pouw.OutcomeCompleted, ProverID: "farm-a"}},
			pend.JobID: {{Number: 1, Outcome: pouw.OutcomeReleased}},
			dead.JobID: {{Number: 1, Outcome: pouw.OutcomeRejected}, {Number: 2, Outcome: pouw.OutcomeFailed}, {Number: 3, Outcome: pouw.OutcomeReleased}},
		},
		InPending: map[string]int{pend.JobID: 1},
		InLeased:  map[string]int{lease.JobID: 1},
		InDead:    map[string]int{dead.JobID: 1},
		Events: []pouw.Event{
			{ID: 1, Type: pouw.EventPoolDeposit}, {ID: 2, Type: pouw.EventJobCreated, JobID: done.JobID},
			{ID: 5, Type: pouw.EventJobCompleted, JobID: done.JobID}, {ID: 9, Type: pouw.EventJobDead, JobID: dead.JobID},
		},
		// 500 reserved for the pending and leased jobs; the dead job's
		// reservation went back to available.
		Pool:           pouw.PoolStatus{Deposited: 2000, Available: 1400, Reserved: 500, Paid: 100},
		Provers:        []pouw.ProverStats{{ProverID: "farm-a", JobsCompleted: 1, TotalFeeEarned: 100}, {ProverID: "farm-b"}},
		ProofErr:       map[string]error{done.JobID: nil},
		AckedCompleted: []string{done.JobID},
	}
	for _, j := range []pouw.ProofJob{done, pend, lease, dead} {
		s.Jobs[j.JobID] = j
	}
	return s
}

func id(n int) string { return fmt.Sprintf("%032x", n) }

func TestCheckFindsEachBrokenInvariant(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(*chaos.Snapshot)
		want    string
	}{
		{"ingested job lost", func(s *chaos.Snapshot) { s.Ingested = append(s.Ingested, id(99)) }, chaos.InvJobKnown},
		{"unknown state", func(s *chaos.Snapshot) { j := s.Jobs[id(2)]; j.State = "limbo"; s.Jobs[id(2)] = j }, chaos.InvOneState},
		{"pending job missing from its queue", func(s *chaos.Snapshot) { delete(s.InPending, id(2)) }, chaos.InvOneState},
		{"pending job listed twice", func(s *chaos.Snapshot) { s.InPending[id(2)] = 2 }, chaos.InvOneState},
		{"completed job still leased", func(s *chaos.Snapshot) { s.InLeased[id(1)] = 1 }, chaos.InvOneState},
		{"dead job also pending", func(s *chaos.Snapshot) { s.InPending[id(4)] = 1 }, chaos.InvOneState},
		{"two completed attempts", func(s *chaos.Snapshot) {
			s.History[id(1)] = append(s.History[id(1)], pouw.Attempt{Number: 3, Outcome: pouw.OutcomeCompleted})
		}, chaos.InvCompletedOnce},
		{"two completion events", func(s *chaos.Snapshot) {
			s.Events = append(s.Events, pouw.Event{ID: 10, Type: pouw.EventJobCompleted, JobID: id(1)})
		}, chaos.InvCompletedOnce},
		{"pool unbalanced", func(s *chaos.Snapshot) { s.Pool.Available++; s.Pool.Deposited += 0 }, chaos.InvPoolBalanced},
		{"reward paid twice", func(s *chaos.Snapshot) {
			s.Pool.Paid += 100
			s.Pool.Available -= 100
			s.Provers[0].TotalFeeEarned += 100
		}, chaos.InvPoolPaid},
		{"dead reservation not returned", func(s *chaos.Snapshot) { s.Pool.Reserved += 400; s.Pool.Available -= 400 }, chaos.InvPoolReserved},
		{"prover paid for another's job", func(s *chaos.Snapshot) {
			s.Provers[0].TotalFeeEarned, s.Provers[1].TotalFeeEarned = 0, 100
		}, chaos.InvProverEarned},
		{"created_seq reused", func(s *chaos.Snapshot) { j := s.Jobs[id(3)]; j.CreatedSeq = 2; s.Jobs[id(3)] = j }, chaos.InvSeqUnique},
		{"event id repeated", func(s *chaos.Snapshot) { s.Events[2].ID = 2 }, chaos.InvEventOrder},
		{"proof no longer verifies", func(s *chaos.Snapshot) { s.ProofErr[id(1)] = errors.New("bad") }, chaos.InvProofVerifies},
		{"proof never re-verified", func(s *chaos.Snapshot) { delete(s.ProofErr, id(1)) }, chaos.InvProofVerifies},
		{"dead without reason", func(s *chaos.Snapshot) { j := s.Jobs[id(4)]; j.DeadReason = ""; s.Jobs[id(4)] = j }, chaos.InvDeadReason},
		{"dead attempts disagree with history", func(s *chaos.Snapshot) {
			j := s.Jobs[id(4)]
			j.Attempts = 3
			s.Jobs[id(4)] = j
		}, chaos.InvDeadAttempts},
		{"acknowledged completion lost", func(s *chaos.Snapshot) { s.AckedCompleted = append(s.AckedCompleted, id(2)) }, chaos.InvAckedCompleted},
		{"acknowledged completion gone", func(s *chaos.Snapshot) { s.AckedCompleted = append(s.AckedCompleted, id(77)) }, chaos.InvAckedCompleted},
	}
	if v := chaos.Check(healthy()); len(v) != 0 {
		t.Fatalf("healthy snapshot has violations: %v", v)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := healthy()
			tc.breakIt(&s)
			v := chaos.Check(s)
			if len(v) == 0 {
				t.Fatalf("no violation found; want %s", tc.want)
			}
			for _, x := range v {
				if x.Invariant == tc.want {
					return
				}
			}
			t.Fatalf("violations %v do not include %s", v, tc.want)
		})
	}
}
