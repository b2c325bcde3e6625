// Package deadline bounds every read and write on a client connection, so that a silent
// server can never hold a client tool forever.
package deadline

import (
	"net"
	"time"
)

// Conn sets a deadline of Timeout before every Read and Write on the wrapped connection.
type Conn struct {
	net.Conn
	Timeout time.Duration
}

func (c Conn) Read(p []byte) (int, error) {
	c.Conn.SetReadDeadline(time.Now().Add(c.Timeout))
	return c.Conn.Read(p)
}

func (c Conn) Write(p []byte) (int, error) {
	c.Conn.SetWriteDeadline(time.Now().Add(c.Timeout))
	return c.Conn.Write(p)
}
