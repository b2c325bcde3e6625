package priority

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestLower: after Lower, every thread of the process, those started later included, has
// niceness Nice and the SCHED_IDLE policy.
func TestLower(t *testing.T) {
	if err := Lower(); err != nil {
		t.Fatal(err)
	}
	// Make the runtime start more threads: a goroutine blocked in a read(2) of a blocking
	// pipe holds one (os.Pipe's would wait in the poller instead).
	var wg sync.WaitGroup
	var writers []int
	before := threads(t)
	for range 8 {
		var fds [2]int
		if err := unix.Pipe2(fds[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		writers = append(writers, fds[1])
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [1]byte
			unix.Read(fds[0], b[:]) // until the writer closes
			unix.Close(fds[0])
		}()
	}
	defer func() {
		for _, w := range writers {
			unix.Close(w)
		}
		wg.Wait()
	}()
	for deadline := time.Now().Add(30 * time.Second); threads(t) < before+4 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	if len(tasks) < 2 {
		t.Fatalf("%d threads: the test needs several", len(tasks))
	}
	for _, task := range tasks {
		tid, _ := strconv.Atoi(task.Name())
		// getpriority(2) returns 20 - nice, so that it is never negative.
		p, err := unix.Getpriority(unix.PRIO_PROCESS, tid)
		if err != nil {
			if b, rerr := os.ReadFile("/proc/self/task/" + task.Name() + "/stat"); rerr != nil || strings.Count(string(b), " ") == 0 {
				continue // the thread ended meanwhile
			}
			t.Fatal(err)
		}
		if nice := 20 - p; nice != Nice {
			t.Errorf("thread %d has niceness %d, want %d", tid, nice, Nice)
		}
		if attr, err := unix.SchedGetAttr(tid, 0); err == nil && attr.Policy != unix.SCHED_IDLE {
			t.Errorf("thread %d has scheduling policy %d, want SCHED_IDLE (%d)", tid, attr.Policy, unix.SCHED_IDLE)
		}
	}
}

func threads(t *testing.T) int {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	return len(tasks)
}
