//go:build race

package agent_test

// raceEnabled: under the race detector proving is several times slower, so
// a smaller job is already long enough to be caught mid-proof.
const raceEnabled = true
