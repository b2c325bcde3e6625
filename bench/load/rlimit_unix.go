//go:build unix

package load

import (
	"syscall"
	"time"
)

// raiseNoFile raises this process's RLIMIT_NOFILE soft limit to at least
// want, and the hard limit too when allowed (as root), and returns the soft
// limit in force.
func raiseNoFile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= want {
		return lim.Cur, nil
	}
	wanted := lim
	wanted.Cur = want
	wanted.Max = max(lim.Max, want)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &wanted); err == nil {
		return want, nil
	}
	// Not allowed above the hard limit: take what there is.
	wanted = syscall.Rlimit{Cur: lim.Max, Max: lim.Max}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &wanted); err != nil {
		return lim.Cur, err
	}
	return lim.Max, nil
}

// processCPU is the CPU time (user and system) this process has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
