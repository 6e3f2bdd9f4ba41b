package main

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	gnarklog "github.com/consensys/gnark/logger"
	"github.com/spf13/pflag"

	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/aggregate"
)

// The aggregate backend (backends/aggregate: gnark Groth16 intent proofs and
// their recursive aggregation) is opt-in: it needs Groth16 keys, so it is
// registered only when --aggregate-keys names key directories.
func init() {
	backendFactories = append(backendFactories, newAggregateBackend)
}

func newAggregateBackend(c backendConfig) (backends.Backend, error) {
	if len(c.aggregateKeys) == 0 {
		return nil, nil // not registered
	}
	return aggregate.New(aggregate.Options{Keys: c.aggregateKeys, Logger: c.logger})
}

// aggregateKeysUsage is the help of --aggregate-keys wherever it appears.
const aggregateKeysUsage = "key directories of the aggregate backend (pouw keys setup --backend aggregate), comma-separated, one per size class: " +
	"registers the backend (off without keys). Keys from pouw keys setup come from a single-party setup: TRUSTED, " +
	"for development only, not production; production keys: pouw keys ceremony (docs/aggregate.md) [POUW_AGGREGATE_KEYS]"

// aggregateKeysFlag is --aggregate-keys.
type aggregateKeysFlag struct{ dirs []string }

func (a *aggregateKeysFlag) register(f *pflag.FlagSet) {
	f.StringSliceVar(&a.dirs, "aggregate-keys", nil, aggregateKeysUsage)
}

// load reads the key directories into c (nothing when the flag is unset):
// each must hold a complete key set whose verifying keys hash to its
// manifest's key ids, and no two may serve the same size class.
func (a *aggregateKeysFlag) load(c *backendConfig) error {
	c.aggregateDirs, c.aggregateKeys = nil, nil
	for _, d := range a.dirs {
		if d = strings.TrimSpace(d); d == "" {
			continue
		}
		ks, err := aggregate.LoadKeys(d)
		if err != nil {
			return fmt.Errorf("--aggregate-keys %s: %w", d, err)
		}
		c.aggregateDirs = append(c.aggregateDirs, d)
		c.aggregateKeys = append(c.aggregateKeys, ks)
	}
	if len(c.aggregateKeys) == 0 {
		return nil
	}
	// gnark logs compiles and proofs to stdout, where a worker process
	// speaks its protocol; our own log lines say what happens.
	gnarklog.Disable()
	if _, err := aggregate.New(aggregate.Options{Keys: c.aggregateKeys}); err != nil {
		return fmt.Errorf("--aggregate-keys %s: %w", strings.Join(c.aggregateDirs, ","), err)
	}
	return nil
}

// errNeedsAggregateKeys is what a command says when it is asked to use the
// aggregate backend without --aggregate-keys.
var errNeedsAggregateKeys = errors.New("the aggregate backend needs Groth16 keys: pass --aggregate-keys DIR " +
	"(make a key set with pouw keys setup --backend aggregate --steps 256 --k 4 --out DIR; single-party keys are trusted, development only)")

// checkAggregateRegistered refuses a use of the aggregate backend (what
// names it) when reg lacks it.
func checkAggregateRegistered(reg *backends.Registry, what string, names ...string) error {
	for _, n := range names {
		if n != aggregate.Name {
			continue
		}
		if _, err := reg.Get(aggregate.Name); err != nil {
			return fmt.Errorf("%s names %s: %w", what, aggregate.Name, errNeedsAggregateKeys)
		}
	}
	return nil
}

// logAggregateKeys says which key sets the aggregate backend runs with, and
// that single-party keys are trusted.
func logAggregateKeys(log *slog.Logger, c backendConfig) {
	for i, ks := range c.aggregateKeys {
		log.Info("aggregate backend keys", "dir", c.aggregateDirs[i], "params", ks.Params.String(),
			"intent_key_id", ks.IntentKeyID, "aggregate_key_id", ks.AggKeyID,
			"note", "keys from pouw keys setup are single-party: trusted, development only")
	}
}
