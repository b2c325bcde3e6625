// Package priority lowers the CPU and I/O priority of the whole process, for a long job
// that shares the machine with a server it must not slow down (petrel backup).
//
// Niceness alone was not enough: a nice-19 thread that has a core keeps it until the
// scheduler's next decision, so a server thread woken by its client or its fsync waited
// behind it, and a server that waits for fsyncs wakes thousands of times a second. Under
// SCHED_IDLE (sched(7)) the kernel preempts the job at once whenever a normal thread wakes
// on its core; the job runs only on time nobody else wants.
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

// Lower gives every thread of the process the SCHED_IDLE policy, niceness Nice and the
// idle I/O class. On Linux all three are per thread (setpriority(2) NOTES), and a Go program
// runs on several. A thread inherits them from the thread that creates it, so a thread made
// after its creator was lowered needs nothing; one made by a thread not yet lowered may be
// missing from the list just read. So the list is read again until a pass finds no thread
// it has not lowered: then every thread in it was lowered before that last read, and any
// thread made since inherits from one of them.
func Lower() error {
	done := map[int]bool{}
	for {
		tasks, err := os.ReadDir("/proc/self/task")
		if err != nil {
			return fmt.Errorf("priority: %w", err)
		}
		fresh := false
		for _, t := range tasks {
			tid, err := strconv.Atoi(t.Name())
			if err != nil || done[tid] {
				continue
			}
			fresh = true
			done[tid] = true
			if err := lowerThread(tid); err != nil {
				return err
			}
		}
		if !fresh {
			return nil
		}
	}
}

func lowerThread(tid int) error {
	if err := unix.Setpriority(unix.PRIO_PROCESS, tid, Nice); err != nil && err != unix.ESRCH {
		return fmt.Errorf("priority: setpriority: %w", err)
	}
	// Any thread may lower itself to SCHED_IDLE; threads it starts inherit the policy.
	err := unix.SchedSetAttr(tid, &unix.SchedAttr{Policy: unix.SCHED_IDLE, Nice: Nice}, 0)
	if err != nil && err != unix.ESRCH {
		return fmt.Errorf("priority: sched_setattr: %w", err)
	}
	_, _, errno := unix.Syscall(unix.SYS_IOPRIO_SET, ioprioWhoProcess, uintptr(tid), ioprioClassIdle<<ioprioClassShift)
	if errno != 0 && errno != unix.ESRCH && errno != unix.EINVAL && errno != unix.EPERM {
		return fmt.Errorf("priority: ioprio_set: %w", errno)
	}
	return nil
}
