package pouw

// PoolStatus is the fee pool ledger. Always:
// Deposited = Available + Reserved + Paid.
type PoolStatus struct {
	Deposited uint64 `json:"deposited"`
	Available uint64 `json:"available"`
	Reserved  uint64 `json:"reserved"`
	Paid      uint64 `json:"paid"`
}

// Balanced reports whether the ledger invariant holds.
func (p PoolStatus) Balanced() bool {
	return p.Deposited == p.Available+p.Reserved+p.Paid
}

// TierStatus counts one tier's jobs.
type TierStatus struct {
	Tier   JobTier          `json:"tier"`
	Counts map[State]uint64 `json:"counts"`
	// OldestPendingAgeMs is the age of the oldest pending job (0 when none).
	OldestPendingAgeMs int64 `json:"oldest_pending_age_ms"`
}

// SystemStatus is the PoUW system status (GET /v1/pouw/system/status).
type SystemStatus struct {
	NowMs int64        `json:"now_ms"`
	Tiers []TierStatus `json:"tiers"`
	Pool  PoolStatus   `json:"pool"`
	// Provers is the number of registered provers.
	Provers uint64 `json:"provers"`
	// LastSeq is the last created_seq handed out.
	LastSeq uint64 `json:"last_seq"`
}
