package load

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"time"
)

// TLSMode says how a connection to the server is secured.
type TLSMode int

const (
	// PlainText sends everything in the clear.
	PlainText TLSMode = iota
	// ImplicitTLS starts TLS with the first byte (ports 465 and 995).
	ImplicitTLS
	// StartTLS upgrades a clear connection: STARTTLS in SMTP (RFC 3207),
	// STLS in POP3 (RFC 2595).
	StartTLS
)

// String returns the mode as the flags name it.
func (m TLSMode) String() string {
	switch m {
	case ImplicitTLS:
		return "tls"
	case StartTLS:
		return "starttls"
	default:
		return "plain"
	}
}

// DefaultTimeout bounds one network read or write when Target.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Target is where a scenario connects and how.
type Target struct {
	Addr       string         // host:port
	TLS        TLSMode        // how the connection is secured
	Insecure   bool           // skip certificate verification (self-signed dev certificates)
	RootCAs    *x509.CertPool // certificates to trust; nil: the system's
	ServerName string         // name to verify the certificate against; default: the host of Addr
	Timeout    time.Duration  // bound on each read, write and dial; default DefaultTimeout
}

func (t Target) timeout() time.Duration {
	if t.Timeout <= 0 {
		return DefaultTimeout
	}
	return t.Timeout
}

func (t Target) tlsConfig() *tls.Config {
	name := t.ServerName
	if name == "" {
		name, _, _ = net.SplitHostPort(t.Addr)
	}
	return &tls.Config{
		ServerName:         name,
		InsecureSkipVerify: t.Insecure, // #nosec G402 -- asked for with -insecure, for dev certificates
		RootCAs:            t.RootCAs,
		// Resumption would make later handshakes cheaper than a fresh
		// client's; a load test of logins should pay the full price each time.
		SessionTicketsDisabled: true,
	}
}

// describe is the target as the report shows it.
func (t Target) describe() string {
	return fmt.Sprintf("%s (%s)", t.Addr, t.TLS)
}

// dial connects to the target. With ImplicitTLS the handshake is done
// before it returns; StartTLS is left to the protocol code. The connection is
// closed when ctx ends, which unblocks any read or write in progress.
func (t Target) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: t.timeout()}
	raw, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, err
	}
	dc := &deadlineConn{Conn: raw, timeout: t.timeout()}
	dc.stop = context.AfterFunc(ctx, func() { raw.Close() })
	if t.TLS != ImplicitTLS {
		return dc, nil
	}
	tc := tls.Client(dc, t.tlsConfig())
	if err := tc.HandshakeContext(ctx); err != nil {
		tc.Close()
		return nil, fmt.Errorf("tls handshake: %w", err)
	}
	return tc, nil
}

// deadlineConn sets a fresh deadline before every Read and Write. go-smtp's
// client clears the deadline after each command and sets none while the
// message body is written; wrapping the socket under it (and under TLS)
// bounds those writes too.
type deadlineConn struct {
	net.Conn
	timeout time.Duration
	stop    func() bool // cancels the close-on-context-end hook
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Read(p)
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

func (c *deadlineConn) Close() error {
	c.stop()
	return c.Conn.Close()
}
