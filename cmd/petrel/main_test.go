package main

import (
	"errors"
	"fmt"
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
