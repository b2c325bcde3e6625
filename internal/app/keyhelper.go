package app

// The key helper: how a server that dropped root still reloads a root-only key.
//
// A server started as root with `user` set binds its ports, then becomes that user (see
// privileges.go). Certificate keys are commonly readable by root only (certbot's
// /etc/letsencrypt/archive is 0700), so after the switch the server itself can no longer read
// a renewed key, and SIGHUP would fail. Holding the old file open does not help either:
// renewals write new files and rename them into place.
//
// So before the switch the server starts a small helper that stays root: the same binary,
// run under the name petrel-key-helper with the two file names as its arguments. It does one
// thing: on each request byte on its stdin it reads exactly those two files and writes them
// back on its stdout. It cannot be told to read anything else, and it exits when its stdin
// closes (the server ended, however it ended). The server holds the key in memory anyway,
// so the helper gives it nothing it did not have: only the renewed versions.
//
// Wire format, both directions over pipes: a request is the byte 'L'; an answer is frames of
// one type byte, a 4-byte big-endian length and that many bytes: 'C' certificate then 'K' key,
// or a single 'E' with an error message.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// KeyHelperName is the argv[0] under which the petrel binary runs as the key helper.
const KeyHelperName = "petrel-key-helper"

const (
	// maxPEM bounds each file: a certificate chain or a key is a few KB.
	maxPEM = 1 << 20
	// keyHelperTimeout bounds one request, so that a stuck helper (a hung network file
	// system) fails a reload instead of blocking the server's main loop.
	keyHelperTimeout = 10 * time.Second
)

// RunKeyHelper is the key helper process: args are the certificate and the key file. It
// returns the process's exit status.
func RunKeyHelper(args []string) int {
	if len(args) != 2 {
		fmt.Fprintln(os.Stderr, KeyHelperName+": started by petrel serve, not by hand")
		return 2
	}
	if err := serveKeys(os.Stdin, os.Stdout, args[0], args[1]); err != nil {
		fmt.Fprintln(os.Stderr, KeyHelperName+":", err)
		return 1
	}
	return 0
}

// serveKeys answers requests from in until it ends.
func serveKeys(in io.Reader, out io.Writer, certFile, keyFile string) error {
	req := make([]byte, 1)
	for {
		if _, err := io.ReadFull(in, req); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if req[0] != 'L' {
			return fmt.Errorf("unknown request %q", req[0])
		}
		cert, err := readPEM(certFile)
		var key []byte
		if err == nil {
			key, err = readPEM(keyFile)
		}
		if err != nil {
			if werr := writeFrame(out, 'E', []byte(err.Error())); werr != nil {
				return werr
			}
			continue
		}
		if err := writeFrame(out, 'C', cert); err != nil {
			return err
		}
		if err := writeFrame(out, 'K', key); err != nil {
			return err
		}
	}
}

func readPEM(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxPEM+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxPEM {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxPEM)
	}
	return b, nil
}

func writeFrame(w io.Writer, typ byte, b []byte) error {
	hdr := make([]byte, 5, 5+len(b))
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(b)))
	_, err := w.Write(append(hdr, b...))
	return err
}

func readFrame(r io.Reader) (byte, []byte, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n > maxPEM {
		return 0, nil, fmt.Errorf("frame of %d bytes", n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return 0, nil, err
	}
	return hdr[0], b, nil
}

// keyHelper is the server's end of a running key helper.
type keyHelper struct {
	mu     sync.Mutex // one request at a time
	broken error      // a failed exchange leaves the pipe out of step: no more requests
	req    *os.File   // the helper's stdin
	resp   *os.File   // the helper's stdout; a pipe, so read deadlines work
	cmd    *exec.Cmd
}

// startKeyHelper starts the helper for the two files with the process's current
// privileges, which it keeps when the server drops them.
func startKeyHelper(certFile, keyFile string) (*keyHelper, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("key helper: %w", err)
	}
	reqR, reqW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("key helper: %w", err)
	}
	respR, respW, err := os.Pipe()
	if err != nil {
		reqR.Close()
		reqW.Close()
		return nil, fmt.Errorf("key helper: %w", err)
	}
	cmd := &exec.Cmd{
		Path:   exe,
		Args:   []string{KeyHelperName, certFile, keyFile},
		Stdin:  reqR,
		Stdout: respW,
		Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{
			// Its own process group: a Ctrl-C meant for the server must not kill the helper
			// before the server is done with it. It goes when its stdin closes, or with the
			// server if that is killed outright.
			Setpgid:   true,
			Pdeathsig: syscall.SIGKILL,
		},
	}
	err = cmd.Start()
	reqR.Close()
	respW.Close()
	if err != nil {
		reqW.Close()
		respR.Close()
		return nil, fmt.Errorf("key helper: %w", err)
	}
	return &keyHelper{req: reqW, resp: respR, cmd: cmd}, nil
}

// load asks the helper for the current contents of the certificate and key files.
func (h *keyHelper) load() (cert, key []byte, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.broken != nil {
		return nil, nil, fmt.Errorf("key helper unusable since an earlier failure (%v); restart petrel to reload", h.broken)
	}
	cert, key, err = h.exchange()
	var fileErr fileError
	if err != nil && !errors.As(err, &fileErr) {
		h.broken = err
	}
	return cert, key, err
}

// fileError is the helper's report that it could not read the files: the exchange itself
// went well.
type fileError string

func (e fileError) Error() string { return string(e) }

func (h *keyHelper) exchange() (cert, key []byte, err error) {
	h.resp.SetReadDeadline(time.Now().Add(keyHelperTimeout))
	if _, err := h.req.Write([]byte{'L'}); err != nil {
		return nil, nil, fmt.Errorf("key helper: %w", err)
	}
	typ, b, err := readFrame(h.resp)
	if err != nil {
		return nil, nil, fmt.Errorf("key helper: %w", err)
	}
	if typ == 'E' {
		return nil, nil, fileError(b)
	}
	typ2, b2, err := readFrame(h.resp)
	if err != nil {
		return nil, nil, fmt.Errorf("key helper: %w", err)
	}
	if typ != 'C' || typ2 != 'K' {
		return nil, nil, fmt.Errorf("key helper: unexpected answer %q %q", typ, typ2)
	}
	return b, b2, nil
}

// Close ends the helper (its stdin closes) and waits for it, for a while: a helper stuck in a
// read cannot be killed by a server that is no longer root, and goes when the server exits
// (Pdeathsig).
func (h *keyHelper) Close() error {
	h.req.Close()
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(keyHelperTimeout):
		err = errors.New("key helper did not exit; it ends with the server")
	}
	h.resp.Close()
	return err
}
