package circuit

import (
	"fmt"
	"os"
	"strings"
	"time"
)

// phaseTimer prints how long each prover round took when
// POUW_PLONKISH_TRACE=1 (profiling aid for bench/plonkish.md).
type phaseTimer struct {
	on    bool
	last  time.Time
	parts []string
}

func newPhaseTimer() *phaseTimer {
	return &phaseTimer{on: os.Getenv("POUW_PLONKISH_TRACE") == "1", last: time.Now()}
}

func (p *phaseTimer) mark(name string) {
	if !p.on {
		return
	}
	now := time.Now()
	p.parts = append(p.parts, fmt.Sprintf("%s=%s", name, now.Sub(p.last).Round(time.Millisecond)))
	p.last = now
}

func (p *phaseTimer) report() {
	if p.on {
		fmt.Fprintln(os.Stderr, "plonkish prove:", strings.Join(p.parts, " "))
	}
}
