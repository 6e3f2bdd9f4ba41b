package main

import (
	"github.com/pouwfarm/pouwfarm/backends"
	"github.com/pouwfarm/pouwfarm/backends/plonkish"
)

// The plonkish backend (backends/plonkish): Halo2-style PLONKish with a
// transparent IPA commitment; keys are derived per circuit size on first use.
func init() {
	backendFactories = append(backendFactories, func(backendConfig) (backends.Backend, error) {
		return plonkish.New(plonkish.Options{}), nil
	})
}
