package rest

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"
)

// releaseImages reads /proc/self/smaps and advises MADV_DONTNEED on every private, read-only,
// file-backed mapping that holds no anonymous page. The last condition is what makes this safe:
// a read-only mapping that was once written (a shared library's relocated RELRO segment) holds
// anonymous copies that DONTNEED would discard, replacing them with the file's original bytes.
// Pages never written are identical to the file, so dropping them loses nothing.
func releaseImages() int64 {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0
	}
	maps := parseSmaps(f)
	f.Close()
	var released int64
	for _, m := range maps {
		if !m.droppable() {
			continue
		}
		if _, _, errno := syscall.Syscall(syscall.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno == 0 {
			released += m.rss
		}
	}
	return released
}

// mapping is one entry of /proc/self/smaps, with what releaseImages needs.
type mapping struct {
	start, end uintptr
	perms      string // "r-xp"
	inode      string // "0" for anonymous memory
	path       string
	rss, anon  int64 // bytes
}

// droppable reports whether the mapping's resident pages are clean copies of a file that
// nothing writes: readable, not writable, private, backed by a file, no anonymous page.
func (m mapping) droppable() bool {
	return len(m.perms) == 4 && m.perms[0] == 'r' && m.perms[1] == '-' && m.perms[3] == 'p' &&
		m.inode != "0" && m.path != "" && m.path[0] == '/' && m.anon == 0 && m.rss > 0
}

func parseSmaps(r io.Reader) []mapping {
	var maps []mapping
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		fields := bytes.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if name, ok := bytes.CutSuffix(fields[0], []byte(":")); ok && len(fields) >= 2 {
			if len(maps) == 0 {
				continue
			}
			kb, _ := strconv.ParseInt(string(fields[1]), 10, 64)
			switch string(name) {
			case "Rss":
				maps[len(maps)-1].rss = kb << 10
			case "Anonymous":
				maps[len(maps)-1].anon = kb << 10
			}
			continue
		}
		// A header: "start-end perms offset dev inode [path]".
		lo, hi, ok := bytes.Cut(fields[0], []byte("-"))
		if !ok || len(fields) < 5 {
			continue
		}
		start, err1 := strconv.ParseUint(string(lo), 16, 64)
		end, err2 := strconv.ParseUint(string(hi), 16, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		m := mapping{start: uintptr(start), end: uintptr(end), perms: string(fields[1]), inode: string(fields[4])}
		if len(fields) >= 6 {
			m.path = string(fields[5])
		}
		maps = append(maps, m)
	}
	return maps
}

// threads is the number of the process's threads (0 if unknown).
func threads() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	_, rest, ok := bytes.Cut(b, []byte("\nThreads:"))
	if !ok {
		return 0
	}
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, _ := strconv.Atoi(string(bytes.TrimSpace(line)))
	return n
}
