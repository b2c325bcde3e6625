package app

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"

	"petrel/internal/config"
)

// bound is a listener New has bound, before the servers that will serve it exist.
type bound struct {
	name string // "smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps", "http", "https", "managesieve"
	key  string // the config key that lists the address, for error messages
	addr string
	l    net.Listener
}

// bindAll binds every address of the config, in the order the servers are listed, or none:
// on a failure the ones already bound are closed again.
func bindAll(cfg *config.Config) ([]bound, error) {
	var bs []bound
	for _, e := range []struct {
		name, key string
		addrs     []string
	}{
		{"smtp", "smtp.listen", cfg.SMTP.Listen},
		{"submission", "smtp.submission", cfg.SMTP.Submission},
		{"submissions", "smtp.submissions", cfg.SMTP.Submissions},
		{"pop3", "pop3.listen", cfg.POP3.Listen},
		{"pop3s", "pop3.listen_tls", cfg.POP3.ListenTLS},
		{"imap", "imap.listen", cfg.IMAP.Listen},
		{"imaps", "imap.listen_tls", cfg.IMAP.ListenTLS},
		{"http", "http.listen", cfg.HTTP.Listen},
		{"https", "http.listen_tls", cfg.HTTP.ListenTLS},
		{"managesieve", "managesieve.listen", cfg.ManageSieve.Listen},
	} {
		for _, addr := range e.addrs {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				for _, b := range bs {
					b.l.Close()
				}
				return nil, listenError(cfg, e.name, e.key, addr, err)
			}
			bs = append(bs, bound{name: e.name, key: e.key, addr: addr, l: l})
		}
	}
	return bs, nil
}

// listenError says why an address cannot be bound and what to do, instead of the bare
// "bind: address already in use".
func listenError(cfg *config.Config, name, key, addr string, err error) error {
	var why string
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		why = "the port is in use (another server, or another petrel, listens there)"
	case errors.Is(err, syscall.EACCES):
		why = "ports below 1024 need root; start petrel as root with user set in the config, and it runs unprivileged once the ports are bound"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		why = "this machine has no such address"
	default:
		why = err.Error()
	}
	todo := "stop what holds it or change " + key + " in " + cfg.File
	if cfg.Dev {
		var all []string
		for _, l := range [][]string{cfg.SMTP.Listen, cfg.SMTP.Submission, cfg.SMTP.Submissions, cfg.POP3.Listen, cfg.POP3.ListenTLS, cfg.IMAP.Listen, cfg.IMAP.ListenTLS, cfg.HTTP.Listen, cfg.HTTP.ListenTLS, cfg.ManageSieve.Listen} {
			all = append(all, l...)
		}
		todo = "the development instance always uses " + strings.Join(all, ", ") +
			": stop what holds the port, or run petrel with a config file (-c FILE) that chooses other ports"
	}
	return fmt.Errorf("cannot listen on %s for %s: %s; %s", addr, name, why, todo)
}

// ListenPorts returns the distinct ports of listen addresses ("host:port"), in order: what
// clients are told to connect to (`petrel dns`, client set-up). Addresses were validated
// when the configuration was loaded; one that does not parse is skipped.
func ListenPorts(addrs []string) []int {
	var out []int
	seen := map[int]bool{}
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			continue
		}
		n, err := strconv.Atoi(p)
		if err != nil || seen[n] {
			continue
		}
		seen[n] = true
		out = append(out, n)
	}
	return out
}
