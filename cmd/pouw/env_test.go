package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestEnvTwinSetsFlagsNotGivenOnTheCommandLine(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string // "steps tags json" after the run
		wantErr string
	}{
		{name: "env fills a missing flag", env: map[string]string{"POUW_T_STEPS": "7"}, want: "7 [] false"},
		{name: "command line wins", args: []string{"--steps", "3"}, env: map[string]string{"POUW_T_STEPS": "7"}, want: "3 [] false"},
		{name: "skipped flag has no twin", env: map[string]string{"POUW_T_JSON": "true"}, want: "1 [] false"},
		{name: "inherited slice flag set once", env: map[string]string{"POUW_T_TAGS": "a,b"}, want: "1 [a b] false"},
		{name: "bad value names the variable", env: map[string]string{"POUW_T_STEPS": "x"}, wantErr: `POUW_T_STEPS="x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var (
				steps  int
				tags   []string
				asJSON bool
				got    string
			)
			root := &cobra.Command{Use: "root"}
			root.PersistentFlags().StringSliceVar(&tags, "tags", nil, "tags")
			sub := &cobra.Command{
				Use:     "sub",
				PreRunE: func(cmd *cobra.Command, _ []string) error { return applyEnvTwins(cmd, "POUW_T_", "json") },
				RunE: func(*cobra.Command, []string) error {
					got = fmt.Sprintf("%d %v %t", steps, tags, asJSON)
					return nil
				},
			}
			sub.Flags().IntVar(&steps, "steps", 1, "steps")
			sub.Flags().BoolVar(&asJSON, "json", false, "json")
			root.AddCommand(sub)
			root.SetArgs(append([]string{"sub"}, tc.args...))
			root.SilenceErrors, root.SilenceUsage = true, true
			err := root.Execute()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAnnotateEnvTwinsKeepsANamedTwin(t *testing.T) {
	cmd := &cobra.Command{Use: "x"}
	cmd.Flags().String("data-dir", "", "files")
	cmd.Flags().String("token", "", "bearer token [POUW_OTHER]")
	annotateEnvTwins(cmd)
	if u := cmd.Flags().Lookup("data-dir").Usage; u != "files [POUW_DATA_DIR]" {
		t.Errorf("data-dir usage %q", u)
	}
	if u := cmd.Flags().Lookup("token").Usage; u != "bearer token [POUW_OTHER]" {
		t.Errorf("token usage %q", u)
	}
}
