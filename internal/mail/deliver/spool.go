package deliver

import (
	"errors"
	"io"
	"os"
	"slices"
	"sync"
)

// DefaultSpoolMemory is a sensible memLimit for NewSpool: most mail is far smaller.
const DefaultSpoolMemory = 1 << 20

// Spool holds one message body while a transaction is in progress: written once, then read
// as often as needed (it implements Body). Bodies up to memLimit bytes stay in memory;
// a larger one moves to a temporary file in dir, which is unlinked as soon as it is
// created, so a crash leaves nothing behind, and whose descriptor Close releases.
//
// A Spool is not safe for concurrent writes; concurrent ReadAt calls after writing are.
type Spool struct {
	dir      string
	memLimit int64
	mem      []byte
	f        *os.File // nil while the body fits in memory
	size     int64
	err      error      // sticky write error
	pool     *SpoolPool // where Close gives mem back; nil for NewSpool
}

// NewSpool returns an empty spool. dir "" means the system temporary directory.
func NewSpool(dir string, memLimit int64) *Spool {
	return &Spool{dir: dir, memLimit: memLimit}
}

// SpoolPool hands out spools that reuse the memory of closed ones. Without it a busy server
// allocates a buffer for every message and grows it by copying (six times for a 100 KB
// body); with it, bodies land in a buffer that earlier ones already grew. Safe for
// concurrent use.
type SpoolPool struct {
	dir      string
	memLimit int64
	bufs     sync.Pool // *[]byte of length 0, capacity at most memLimit
}

// NewSpoolPool returns a pool of spools like NewSpool(dir, memLimit).
func NewSpoolPool(dir string, memLimit int64) *SpoolPool {
	return &SpoolPool{dir: dir, memLimit: memLimit}
}

// Get returns an empty spool. Its Close gives the memory back to p, so nothing may read
// the spool after Close.
func (p *SpoolPool) Get() *Spool {
	s := NewSpool(p.dir, p.memLimit)
	s.pool = p
	if b, ok := p.bufs.Get().(*[]byte); ok {
		s.mem = *b
	}
	return s
}

// Write appends p to the body.
func (s *Spool) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.f == nil && s.size+int64(len(p)) > s.memLimit {
		if err := s.toFile(); err != nil {
			s.err = err
			return 0, err
		}
	}
	if s.f == nil {
		s.grow(len(p))
		s.mem = append(s.mem, p...)
		s.size += int64(len(p))
		return len(p), nil
	}
	n, err := s.f.Write(p)
	s.size += int64(n)
	if err != nil {
		s.err = err
	}
	return n, err
}

// ReadFrom fills the spool from r. Small bodies are read straight into memory, without the
// 32 KiB intermediate buffer io.Copy would otherwise allocate for every message.
func (s *Spool) ReadFrom(r io.Reader) (int64, error) {
	var total int64
	for s.f == nil {
		if s.err != nil {
			return total, s.err
		}
		s.grow(512)
		n, err := r.Read(s.mem[len(s.mem):cap(s.mem)])
		s.mem = s.mem[:len(s.mem)+n]
		s.size += int64(n)
		total += int64(n)
		if s.size > s.memLimit {
			if ferr := s.toFile(); ferr != nil {
				s.err = ferr
				return total, ferr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
	// Hide ReadFrom so that io.Copy does not call back into it.
	n, err := io.Copy(struct{ io.Writer }{s}, r)
	return total + n, err
}

// grow makes room for at least n more bytes in memory, doubling (from 4 KiB) so that the
// trace headers and a small body share one allocation.
func (s *Spool) grow(n int) {
	if cap(s.mem)-len(s.mem) < n {
		s.mem = slices.Grow(s.mem, max(4096, len(s.mem), n))
	}
}

// toFile moves the in-memory body to a temporary file.
func (s *Spool) toFile() error {
	f, err := os.CreateTemp(s.dir, "petrel-spool-*")
	if err != nil {
		return err
	}
	// Unlinked at once: the open descriptor keeps the data until Close.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(s.mem); err != nil {
		f.Close()
		return err
	}
	s.f, s.mem = f, nil
	return nil
}

// ReadAt reads the body written so far.
func (s *Spool) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("deliver: spool: negative offset")
	}
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	if off >= int64(len(s.mem)) {
		return 0, io.EOF
	}
	n := copy(p, s.mem[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Size is the number of bytes written.
func (s *Spool) Size() int64 { return s.size }

// InMemory reports whether the body is still held in memory (for tests and metrics).
func (s *Spool) InMemory() bool { return s.f == nil }

// Reader returns a reader over the whole body.
func (s *Spool) Reader() io.Reader { return io.NewSectionReader(s, 0, s.size) }

// Close releases the memory (to the pool it came from, if any) and the temporary file, if
// any. The spool must not be used afterwards.
func (s *Spool) Close() error {
	if s.pool != nil && s.mem != nil && int64(cap(s.mem)) <= s.memLimit {
		b := s.mem[:0]
		s.pool.bufs.Put(&b)
	}
	s.mem = nil
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	s.err = os.ErrClosed
	return err
}
