package pop3d

// What an idle session costs. Most POP3 connections spend nearly all their life waiting for
// the next command, so that wait is made cheap (docs/benchmarks.md, idle connections): the
// write buffer is only ever held while a command runs (server.go), and a session that has had
// no input for moveOnAfter gives its read buffer back and waits for the socket on a fresh
// goroutine with a small stack (netconn.Input, whose comment has the reasoning). The path
// from serve's start to that wait (run, readLine, Input.Wait) must stay shallow: each frame
// on it counts against the fresh goroutine's 2 KB stack.

import "time"

// moveOnAfter is how long a session waits for its next command on the goroutine that ran the
// last one before it continues on a fresh one.
const moveOnAfter = 100 * time.Millisecond
