//go:build !race

package agent

// RaceEnabled: see race_internal_test.go.
const RaceEnabled = false
