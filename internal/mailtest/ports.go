package mailtest

import (
	"net"
	"sync"
	"testing"
)

// handedOut is every port FreePorts has returned in this process. It is the one piece of
// package state in mailtest, and on purpose: the port space is shared by every test of the
// process, so only a process-wide record keeps two parallel tests (an e2e instance and the
// Dovecot of another test, say) from being given the same port in the time between our
// close and their server's bind. Ports are never given back: a test process uses a few
// thousand at the most of the 28,000 in the kernel's ephemeral range.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// FreePort returns a port on 127.0.0.1 that was free a moment ago (see FreePorts).
func FreePort(t testing.TB) int { return FreePorts(t, 1)[0] }

// FreePorts returns n distinct ports on 127.0.0.1 that were free a moment ago and that no
// earlier call in this process returned. The listeners stay open until all n are chosen:
// the kernel may hand out a port it just gave back, and two calls of FreePort once gave a
// server config the same port twice ("duplicate listener"). Another process may still take
// a port before the test's server binds it; tests that cannot bear that run in their own
// network namespace.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = make(map[int]bool)
	}
	ports := make([]int, 0, n)
	// A port handed out before is skipped, its listener held so that the kernel offers
	// another; the bound only stops a loop if the kernel kept offering the same ones.
	for tries := 0; len(ports) < n; tries++ {
		if tries == 100*n {
			t.Fatalf("no free port on 127.0.0.1 after %d tries", tries)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		p := l.Addr().(*net.TCPAddr).Port
		if !handedOut.ports[p] {
			ports = append(ports, p)
		}
	}
	for _, p := range ports {
		handedOut.ports[p] = true
	}
	return ports
}
