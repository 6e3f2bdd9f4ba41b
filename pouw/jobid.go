package pouw

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"

	"github.com/zeebo/blake3"
)

// JobIDPrefix is the domain separator of the job ID derivation.
const JobIDPrefix = "rivellum-pouw-job-v1"

// JobIDLen is the length of a job ID in hex characters.
const JobIDLen = 32

// JobID derives the deterministic job ID of SPEC.md:
//
//	hex(BLAKE3("rivellum-pouw-job-v1" || intent_id || trace_hash || tier || created_seq)[:16])
//
// with intent_id and trace_hash as 32 raw bytes, tier as one byte and
// created_seq as a big-endian uint64.
func JobID(intent, traceHash Hash, tier JobTier, seq uint64) string {
	var buf [len(JobIDPrefix) + 32 + 32 + 1 + 8]byte
	n := copy(buf[:], JobIDPrefix)
	n += copy(buf[n:], intent[:])
	n += copy(buf[n:], traceHash[:])
	buf[n] = byte(tier)
	n++
	binary.BigEndian.PutUint64(buf[n:], seq)
	sum := blake3.Sum256(buf[:])
	return hex.EncodeToString(sum[:16])
}

// ValidateJobID checks that id has the form of a job ID: 32 lowercase hex
// characters.
func ValidateJobID(id string) error {
	if len(id) != JobIDLen {
		return fmt.Errorf("%w: job id must be %d hex characters, got %d", ErrInvalid, JobIDLen, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return fmt.Errorf("%w: job id must be lowercase hex, found %q at %d", ErrInvalid, c, i)
		}
	}
	return nil
}

// BatchIntentID is the intent id of a Full (batch) job: the BLAKE3 of its
// intents' ids in order.
func BatchIntentID(intents []Hash) Hash {
	h := blake3.New()
	for _, id := range intents {
		_, _ = h.Write(id[:])
	}
	var out Hash
	copy(out[:], h.Sum(nil))
	return out
}
