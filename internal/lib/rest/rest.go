// Package rest gives a long-waiting process's untouched memory back to the system while it
// waits, so that a program which sleeps for hours between events (petrel fetch --idle) holds
// only what it still uses.
package rest

import "runtime/debug"

// Release returns free heap to the system and drops the process's clean, read-only pages of
// its executable and shared libraries from its resident set. It returns the bytes of such
// pages that were resident. Those pages stay in the kernel's page cache, shared with any other
// process that maps the same file (a petrel serve on the same host), and come back on the next
// touch by a minor fault: the cost is a few hundred microseconds when the process wakes.
func Release() int64 {
	debug.FreeOSMemory()
	return releaseImages()
}
