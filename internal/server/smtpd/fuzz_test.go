package smtpd

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// FuzzSession feeds arbitrary bytes to a session over a real TCP connection, then closes
// the client's sending side. The server must neither panic nor hang: it has to close the
// connection soon after its input ends.
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO a\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"HELO a\r\nMAIL FROM:<x@y>\r\nRCPT TO:<bob@example.test>\r\nBDAT 5\r\nabcdeBDAT 0 LAST\r\nRSET\r\n",
		"EHLO a\r\nMAIL FROM:<x@y> SIZE=99999999999\r\nRCPT TO:<@a:b@c>\r\nVRFY x\r\nEXPN y\r\nNOOP\r\n",
		"EHLO a\r\nAUTH PLAIN\r\n*\r\nAUTH LOGIN\r\nAUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=\r\nMAIL FROM:<alice@example.test>\r\n",
		"EHLO a\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\na\n.\r\nb\r.\r\n.\r\n",
		"EHLO a\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello",
		"BDAT 10 LAST\r\n0123456789MAIL FROM:<>\r\n",
		"\x00\xff\r\n\r\n\n\n...\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	fd := newFakeDeliverer()
	mx := startServer(f, Config{TLS: serverTLS(f), ReadTimeout: time.Minute}, fd)
	sub := startServer(f, Config{Role: RoleSubmission, AllowInsecureAuth: true, ReadTimeout: time.Minute}, fd)

	f.Fuzz(func(t *testing.T, input []byte) {
		for _, addr := range []string{mx.addr, sub.addr} {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			nc.SetDeadline(time.Now().Add(2 * time.Minute))
			go func() {
				nc.Write(input)
				nc.(*net.TCPConn).CloseWrite()
			}()
			// A reset is a close too: a server that ends the session early (a line too long,
			// QUIT) with the client's input still unread makes the kernel send RST, not FIN.
			if _, err := io.Copy(io.Discard, nc); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("server did not close the connection after the input ended: %v", err)
			}
			nc.Close()
		}
	})
}
