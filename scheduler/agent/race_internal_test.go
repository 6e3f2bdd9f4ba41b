//go:build race

package agent

// RaceEnabled: under the race detector gnark proves several times slower
// (an aggregate proof takes minutes on 2 cores), so the aggregation tests
// prove one aggregate, through the worker process path, and skip the
// duplicates.
const RaceEnabled = true
