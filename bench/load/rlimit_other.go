//go:build !unix

package load

import "time"

// raiseNoFile does nothing where there is no RLIMIT_NOFILE.
func raiseNoFile(want uint64) (uint64, error) { return 0, nil }

// processCPU is not measured here.
func processCPU() time.Duration { return 0 }
