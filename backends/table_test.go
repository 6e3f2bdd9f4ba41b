package backends_test

import (
	"errors"
	"testing"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/pouw"
)

func TestParseTableRoundTripsAndRejectsMalformedTables(t *testing.T) {
	tab, err := backends.ParseTable(" micro=plonkish, macro=stark,full=aggregate")
	if err != nil {
		t.Fatal(err)
	}
	if tab.Backend(pouw.TierMicro) != "plonkish" || tab.Backend(pouw.TierMacro) != "stark" || tab.Backend(pouw.TierFull) != "aggregate" {
		t.Fatalf("parsed %v", tab)
	}
	if got := tab.String(); got != "micro=plonkish,macro=stark,full=aggregate" {
		t.Fatalf("String() = %q", got)
	}
	if def := backends.DefaultTable(); def.String() != "micro=plonkish,macro=stark,full=stark" {
		t.Fatalf("default table %v", def)
	}
	for _, bad := range []string{
		"", "micro=stark", "micro=stark,macro=stark", "micro=stark,macro=stark,full=",
		"micro=stark,macro=stark,full=stark,micro=stark", "micro=stark,macro=stark,huge=stark",
		"micro:stark,macro=stark,full=stark",
	} {
		if _, err := backends.ParseTable(bad); !errors.Is(err, backends.ErrInvalidTable) {
			t.Errorf("ParseTable(%q) = %v, want ErrInvalidTable", bad, err)
		}
	}
}
