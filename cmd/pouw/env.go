package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envName is the environment twin of flag name under prefix
// (--cores-per-slot with "POUW_": POUW_CORES_PER_SLOT).
func envName(prefix, flag string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// applyEnvTwins sets every flag of cmd not given on the command line from
// its prefix<NAME> environment variable, so a deployment can configure a
// command without arguments. --help and the flags named in skip have no
// twin. A flag inherited from a parent is set once even though cobra lists
// it both among cmd's flags and its inherited ones: slice flags append.
func applyEnvTwins(cmd *cobra.Command, prefix string, skip ...string) error {
	var err error
	seen := map[string]bool{}
	visit := func(f *pflag.Flag) {
		if err != nil || seen[f.Name] || f.Changed || f.Name == "help" || slices.Contains(skip, f.Name) {
			return
		}
		seen[f.Name] = true
		name := envName(prefix, f.Name)
		if v, ok := os.LookupEnv(name); ok {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, e)
			}
		}
	}
	cmd.Flags().VisitAll(visit)
	cmd.InheritedFlags().VisitAll(visit)
	return err
}

// annotateEnvTwins adds " [POUW_<FLAG>]" to the help of every flag of cmd
// and its subcommands, so --help shows each flag's environment twin; a flag
// whose help already names a twin keeps it.
func annotateEnvTwins(cmd *cobra.Command) *cobra.Command {
	note := func(f *pflag.Flag) {
		if f.Name == "help" || strings.Contains(f.Usage, "[POUW_") {
			return
		}
		f.Usage += " [" + envName("POUW_", f.Name) + "]"
	}
	cmd.Flags().VisitAll(note)
	cmd.PersistentFlags().VisitAll(note)
	for _, sub := range cmd.Commands() {
		annotateEnvTwins(sub)
	}
	return cmd
}
