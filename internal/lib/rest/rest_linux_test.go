package rest

import (
	"crypto/sha256"
	"fmt"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"
)

const sample = `00400000-01064000 r-xp 00000000 fe:00 10257641                           /usr/bin/petrel
Rss:                8720 kB
Anonymous:             0 kB
01064000-01d6d000 r--p 00c64000 fe:00 10257641                           /usr/bin/petrel
Rss:                8484 kB
Anonymous:             0 kB
01d6d000-01ec7000 rw-p 0196d000 fe:00 10257641                           /usr/bin/petrel
Rss:                 756 kB
Anonymous:           228 kB
320a8000000-320a8c00000 rw-p 00000000 00:00 0 
Rss:                4560 kB
Anonymous:          4560 kB
7f7096066000-7f709608c000 r--p 00000000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                 152 kB
Anonymous:             0 kB
7f7096235000-7f7096239000 r--p 001ce000 fe:00 326269                     /usr/lib/x86_64-linux-gnu/libc.so.6
Rss:                  16 kB
Anonymous:            16 kB
7ffd4e5f0000-7ffd4e5f4000 r--p 00000000 00:00 0                          [vvar]
Rss:                   0 kB
Anonymous:             0 kB
7ffd4e5f4000-7ffd4e5f6000 r-xp 00000000 00:00 0                          [vdso]
Rss:                   8 kB
Anonymous:             0 kB
7f7096300000-7f7096301000 r--s 00000000 fe:00 4242                       /dev/shm/shared
Rss:                   4 kB
Anonymous:             0 kB
`

func TestDroppable(t *testing.T) {
	var got []string
	for _, m := range parseSmaps(strings.NewReader(sample)) {
		if m.droppable() {
			got = append(got, fmt.Sprintf("%x %s %d", m.start, m.path, m.rss>>10))
		}
	}
	// The binary's code and read-only data, and libc's never-written segment; not the written
	// data segment, the heap, libc's relocated (RELRO) pages, the vDSO or a shared mapping.
	want := []string{"400000 /usr/bin/petrel 8720", "1064000 /usr/bin/petrel 8484", "7f7096066000 /usr/lib/x86_64-linux-gnu/libc.so.6 152"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("droppable mappings:\n got %q\nwant %q", got, want)
	}
}

// imageRSS is the resident size of this test binary's droppable mappings.
func imageRSS(t *testing.T) int64 {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	var n int64
	for _, m := range parseSmaps(f) {
		if m.path == exe && m.droppable() {
			n += m.rss
		}
	}
	return n
}

func TestReleaseDropsTheBinaryAndKeepsWorking(t *testing.T) {
	before := imageRSS(t)
	if before == 0 {
		t.Fatal("no resident page of the test binary found in /proc/self/smaps")
	}
	sum := sha256.Sum256([]byte("petrel"))
	released := Release()
	after := imageRSS(t)
	t.Logf("binary resident before %d KB, released %d KB, resident after %d KB", before>>10, released>>10, after>>10)
	if released <= 0 || after >= before {
		t.Errorf("Release released %d bytes; the binary's resident pages went from %d to %d bytes", released, before, after)
	}
	// The dropped pages come back from the page cache on their next use.
	if again := sha256.Sum256([]byte("petrel")); again != sum {
		t.Error("code run after Release computes a different result")
	}
}

func TestTrimThreadsEndsIdleThreads(t *testing.T) {
	// Park extra goroutines on threads of their own, then let them go: their threads stay,
	// idle, as after a sync that blocked in many system calls at once.
	const extra = 12
	var started, done sync.WaitGroup
	release := make(chan struct{})
	for range extra {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			started.Done()
			<-release
		}()
	}
	started.Wait()
	peak := threads()
	close(release)
	done.Wait()
	if peak == 0 {
		t.Skip("no thread count in /proc/self/status")
	}
	keep := runtime.GOMAXPROCS(0) + spareThreads
	asked := trimThreads(keep)
	// Threads end asynchronously, after their goroutine is gone; poll with a generous deadline.
	deadline := time.Now().Add(30 * time.Second)
	for threads() > peak-extra/2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("threads: %d at the peak, trimThreads(%d) asked %d to end, %d now", peak, keep, asked, threads())
	if now := threads(); now > peak-extra/2 {
		t.Errorf("%d threads after trimThreads, %d before: the idle threads did not end", now, peak)
	}
}

func TestShrinkStacksAfterDeepCall(t *testing.T) {
	stacks := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	base := stacks()
	// A goroutine whose stack grew to about 1 MB in a deep call and that then waits.
	grown := make(chan struct{})
	release := make(chan struct{})
	go func() {
		deep(1 << 20)
		close(grown)
		<-release
	}()
	<-grown
	defer close(release)
	before := stacks()
	shrinkStacks()
	after := stacks()
	t.Logf("goroutine stacks: %d KB before the deep call, %d KB after it, %d KB after shrinkStacks", base>>10, before>>10, after>>10)
	// One collection halves the grown stack once; only repeated ones bring it down towards
	// the few KB it uses.
	if grew := int64(before) - int64(base); int64(after)-int64(base) > grew/3 {
		t.Errorf("goroutine stacks: %d bytes, %d after a deep call, %d after shrinkStacks; want most of the growth gone", base, before, after)
	}
}

// deep uses about n bytes of stack.
func deep(n int) byte {
	var pad [1024]byte
	pad[n%len(pad)] = byte(n)
	if n <= len(pad) {
		return pad[0]
	}
	return deep(n-len(pad)) + pad[n%len(pad)]
}
