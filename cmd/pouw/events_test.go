package main

import (
	"strings"
	"testing"

	"github.com/pouwfarm/pouwfarm/pouw"
)

func TestEventLineShowsWhoDidWhat(t *testing.T) {
	macro := pouw.TierMacro
	for _, tc := range []struct {
		name string
		ev   pouw.Event
		want []string
	}{
		{"audit", pouw.Event{ID: 7, Type: pouw.EventAdminAction, Action: pouw.ActionBatch, Actor: "admin:ab12", JobID: "j1", Reason: "k 2"},
			[]string{"7 ", "admin.action", "action=batch", "actor=admin:ab12", "job=j1", `reason="k 2"`}},
		{"state change", pouw.Event{ID: 8, Type: pouw.EventJobReady, JobID: "j2", Tier: &macro, State: pouw.StatePending},
			[]string{"job.ready", "job=j2", "tier=macro", "state=pending"}},
	} {
		line := eventLine(tc.ev)
		for _, w := range tc.want {
			if !strings.Contains(line, w) {
				t.Errorf("%s: %q lacks %q", tc.name, line, w)
			}
		}
		if tc.ev.Action == "" && strings.Contains(line, "action=") {
			t.Errorf("%s: %q names an action it does not have", tc.name, line)
		}
	}
}
