// Package rest gives a long-waiting process's untouched memory back to the system while it
// waits, so that a program which sleeps for hours between events (petrel fetch --idle) holds
// only what it still uses.
package rest

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// spareThreads is how many threads beyond GOMAXPROCS a process at rest keeps: the runtime's
// monitor and one for a blocking system call, so that waking does not start one at once.
const spareThreads = 2

// maxShrinks bounds the collections Release runs to shrink goroutine stacks.
const maxShrinks = 8

// Release returns free heap to the system and drops the process's clean, read-only pages of
// its executable and shared libraries from its resident set. It returns the bytes of such
// pages that were resident. Those pages stay in the kernel's page cache, shared with any other
// process that maps the same file (a petrel serve on the same host), and come back on the next
// touch by a minor fault: the cost is a few hundred microseconds when the process wakes.
func Release() int64 {
	trimThreads(runtime.GOMAXPROCS(0) + spareThreads)
	shrinkStacks()
	debug.FreeOSMemory()
	return releaseImages()
}

// shrinkStacks collects until the goroutines' stacks stop shrinking. A stack grows while a
// goroutine works (a TLS handshake, a download) and keeps that size when the goroutine then
// waits for hours; the runtime halves a stack that uses under a quarter of itself at each
// collection, one step per collection, so a waiting goroutine whose stack grew to 32 KB needs
// a few collections to come back to its few KB. A waiting process collects no more by itself.
func shrinkStacks() {
	s := []metrics.Sample{{Name: "/memory/classes/heap/stacks:bytes"}}
	metrics.Read(s)
	last := s[0].Value.Uint64()
	for range maxShrinks {
		runtime.GC()
		metrics.Read(s)
		now := s[0].Value.Uint64()
		if now >= last {
			return
		}
		last = now
	}
}

// trimThreads ends the runtime's idle threads beyond keep. The runtime starts a thread
// whenever a goroutine blocks in a system call (a file write, an fsync of the archive) while
// others want to run, and never ends one: after syncing 20 accounts at once a process keeps
// a dozen or more, each with a 32 KB signal stack and a 16 KB system stack in the heap. A
// goroutine that locks its thread and returns without unlocking it ends that thread, so
// holding n such goroutines at once takes n idle threads (or starts new ones, which end the
// same way) and ends them. It returns how many threads it asked to end.
func trimThreads(keep int) int {
	n := threads() - keep
	if n <= 0 {
		return 0
	}
	var started, done sync.WaitGroup
	release := make(chan struct{})
	for range n {
		started.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
			started.Done()
			<-release
		}()
	}
	started.Wait()
	close(release)
	done.Wait()
	return n
}
