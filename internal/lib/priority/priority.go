// Package priority lowers the CPU and I/O priority of the whole process, for a long job
// that shares the machine with a server it must not slow down (petrel backup).
package priority

import (
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// Nice is the CPU niceness Lower sets: the weakest claim on the CPU (man 7 sched).
const Nice = 19

// ioprio_set(2): the idle class, served only when no other process wants the disk. It
// takes effect with the BFQ I/O scheduler and is ignored by the others (mq-deadline, none).
const (
	ioprioWhoProcess = 1
	ioprioClassIdle  = 3
	ioprioClassShift = 13
)

// Lower gives every thread of the process niceness Nice and the idle I/O class. On Linux
// both are per thread (setpriority(2) NOTES), and a Go program runs on several: each one in
// /proc/self/task is set, and threads the runtime starts later inherit from the thread
// that creates them, which is one of those.
func Lower() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("priority: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, Nice); err != nil && err != unix.ESRCH {
			return fmt.Errorf("priority: setpriority: %w", err)
		}
		_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioClassIdle<<ioprioClassShift)
		if errno != 0 && errno != unix.ESRCH && errno != unix.EINVAL && errno != unix.EPERM {
			return fmt.Errorf("priority: ioprio_set: %w", errno)
		}
	}
	return nil
}
