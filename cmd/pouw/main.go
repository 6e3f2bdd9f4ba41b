// Command pouw is the pouwfarm CLI: coordinator, farm, dev, and the tools
// around them. It is thin: flag parsing and wiring only; everything a test
// would want to reach lives in the packages.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			if ee.msg != "" {
				fmt.Fprintln(os.Stderr, "pouw:", ee.msg)
			}
			os.Exit(ee.code)
		}
		fmt.Fprintln(os.Stderr, "pouw:", err)
		os.Exit(1)
	}
}

// exitError ends the program with a specific exit code.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "pouw",
		Short: "pouwfarm: a Proof-of-Useful-Work coordinator and GPU prover farm",
		Long: `pouw runs the pieces of a Proof-of-Useful-Work prover farm: a coordinator
that serves proof jobs over the PoUW HTTP API, farms that prove them on CPU
cores and NVIDIA GPUs, and the tools around them.

Flags have environment twins (POUW_STORE, POUW_TOKEN, POUW_COORDINATOR, ...).`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	for _, c := range root.Commands() {
		strictGroups(c)
	}
	return root
}

// strictGroups makes every command that only groups subcommands refuse an
// argument that names none of them. Without a Run of its own, cobra prints
// the help and exits 0 for `pouw jobs list`, so a typo or a command from
// another version looks like success to a script. Called bare, such a
// command still prints its help.
func strictGroups(c *cobra.Command) {
	if c.HasSubCommands() && !c.Runnable() {
		c.Args = cobra.NoArgs
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		strictGroups(sub)
	}
}

// commands holds the constructors of the subcommands. Each area's file adds
// its own in an init function, so areas never edit a shared list.
var commands []func() *cobra.Command
