package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"petrel/internal/cli"
)

func TestExitStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{errors.New("store: not found"), 1},
		{cli.ErrUsage, 2},
		{fmt.Errorf("%w: petrel account add ADDRESS", cli.ErrUsage), 2},
		{&cli.ExitError{Code: 3, Err: errors.New("local: disk full")}, 3},
		{&cli.ExitError{Code: 1}, 1},
		{fmt.Errorf("fetch: %w", &cli.ExitError{Code: 3}), 3},
	} {
		if got := report(tc.err); got != tc.want {
			t.Errorf("report(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestGlobalFlags: --help is a request, answered on stdout with status 0; a wrong flag is a
// mistake, answered on stderr with status 2.
func TestGlobalFlags(t *testing.T) {
	for _, tc := range []struct {
		args        []string
		ok          bool // parsing goes on to a command
		code        int
		out, errOut bool // usage on stdout, on stderr
	}{
		{args: []string{"--help"}, out: true},
		{args: []string{"-h"}, out: true},
		{args: []string{"--data", "d", "-help"}, out: true},
		{args: []string{"--bogus"}, code: 2, errOut: true},
		{args: []string{"--data", "d", "-c", "f", "domain", "list"}, ok: true},
	} {
		var out, errOut bytes.Buffer
		g, code := parseGlobal(tc.args, &out, &errOut)
		if (g != nil) != tc.ok || code != tc.code ||
			strings.Contains(out.String(), "usage: petrel") != tc.out || strings.Contains(errOut.String(), "usage: petrel") != tc.errOut {
			t.Errorf("%v: globals %v, code %d, stdout %q, stderr %q", tc.args, g, code, out.String(), errOut.String())
		}
		if tc.ok && (g.data != "d" || g.config != "f" || strings.Join(g.args, " ") != "domain list") {
			t.Errorf("%v: parsed %+v", tc.args, g)
		}
	}
}
