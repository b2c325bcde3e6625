package app

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"petrel/internal/lib/safefile"
	"petrel/internal/server/httpd"

	"petrel/internal/mail/deliver"
	"petrel/internal/mail/msgauth"
	"petrel/internal/mail/srs"
	"petrel/internal/outbound/mx"
	"petrel/internal/outbound/queue"
	"petrel/internal/outbound/smtpclient"
)

// newQueue builds the outbound queue of cfg: the router (resolver, MTA-STS with its cache in
// the store, DANE), the delivery client (or the smart host) and the scheduler, and lets dl
// sign and queue remote recipients.
func (a *App) newQueue(dl *deliver.Deliverer) (*queue.Queue, error) {
	cfg := a.cfg
	o := cfg.Outbound
	var roots *x509.CertPool
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("outbound.ca_file: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("outbound.ca_file %s: no PEM certificate", o.CAFile)
		}
	}
	ccfg := smtpclient.Config{Hostname: cfg.Hostname, Port: o.Port, RootCAs: roots, Log: a.log.With("component", "smtpclient")}
	if o.SmartHost != "" {
		host, port, _ := net.SplitHostPort(o.SmartHost) // validated by config
		p, _ := strconv.Atoi(port)
		ccfg.SmartHost = &smtpclient.SmartHost{Host: host, Port: p, ImplicitTLS: p == 465,
			Username: o.SmartHostUser, Password: o.SmartHostPassword}
	} else {
		var res *mx.DNSResolver
		if addr := cfg.OutboundResolver(); addr != "" {
			res = &mx.DNSResolver{Servers: []string{addr}}
		} else {
			var err error
			if res, err = mx.SystemResolver(); err != nil {
				// Not fatal: local mail works without DNS; remote recipients wait (and the
				// log says why) until a resolver is configured.
				a.log.Warn("outbound: no DNS resolver; mail to other domains will wait (set dns.resolver)", "err", err)
				res = &mx.DNSResolver{}
			}
		}
		if t := cfg.DNS.Timeout.Duration; t > 0 {
			res.Timeout = t
		}
		// Answers are kept for their TTL: every message to a domain asks the same names.
		res.Cache = &mx.LookupCache{}
		r := &mx.Router{Resolver: res, Port: o.Port, DANE: o.DANE, Self: []string{cfg.Hostname}, Log: a.log.With("component", "mx")}
		if o.MTASTS {
			r.STS = &mx.STS{Resolver: res, Cache: queue.STSCache{Store: a.store}, Log: r.Log}
		}
		ccfg.Router = r
	}
	postmaster := o.Postmaster
	if postmaster == "" && len(cfg.Domains) > 0 {
		postmaster = "postmaster@" + strings.ToLower(cfg.Domains[0])
	}
	q := queue.New(queue.Config{
		Hostname:   cfg.Hostname,
		Postmaster: postmaster,
		Schedule: queue.Schedule{First: o.RetryFirst.Duration, Max: o.RetryMax.Duration, Expire: o.Expire.Duration,
			DelayWarning: o.DelayWarning.Duration},
		Workers:               o.Workers,
		PerDomain:             o.PerDomain,
		MessagesPerConnection: o.MessagesPerConnection,
		AttemptTimeout:        o.AttemptTimeout.Duration,
		Metrics:               a.metrics,
	}, a.store, smtpclient.New(ccfg), dl, a.log.With("component", "queue"))
	var signer deliver.Signer
	if o.DKIMSign {
		signer = &msgauth.Signer{Keys: a.dkim}
	}
	dl.SetOutbound(signer, q.Kick)
	if o.DKIMSign {
		// Forwarded copies of verified mail get an ARC set with the forwarding domain's key.
		dl.SetSealer(&msgauth.Sealer{Keys: a.dkim, AuthServID: cfg.Hostname})
	}
	if o.Forward {
		key, err := srsKey(cfg.Data)
		if err != nil {
			return nil, err
		}
		dl.SetForwarding(deliver.Forwarding{SRS: &srs.Rewriter{Key: key}, Hostname: cfg.Hostname,
			PerAliasHour: o.ForwardPerAliasHour})
	}
	return q, nil
}

// srsKeyName is the file in the data directory that holds the SRS key: made once, kept, so
// that bounces of mail forwarded before a restart still find their way back. (Nodes sharing
// a PostgreSQL store need the same file.)
const srsKeyName = "srs.key"

// srsKey returns the SRS key of the data directory, making it on first use.
func srsKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, srsKeyName)
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(key) < 16 {
			return nil, fmt.Errorf("%s: not a hex key of at least 16 bytes; delete it to make a new one "+
				"(bounces of mail forwarded until now then stop reaching their senders)", path)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	key := make([]byte, 32)
	rand.Read(key)
	if err := safefile.WriteAtomic(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("making the SRS key: %w", err)
	}
	return key, nil
}

// runQueue runs q until ctx ends; the returned function waits for it to stop.
func runQueue(ctx context.Context, q *queue.Queue, a *App) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := q.Run(ctx); err != nil {
			a.log.Error("outbound queue stopped", "err", err)
		}
	}()
	return func() { <-done }
}

// queueStats is the outbound queue's size for the metrics: the store's own listing (what
// `petrel queue list` shows), read at most every few seconds by httpd.Metrics.Queue.
func (a *App) queueStats() (httpd.QueueStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	es, err := a.store.Entries(ctx)
	if err != nil {
		return httpd.QueueStats{}, err
	}
	var s httpd.QueueStats
	for _, e := range es {
		s.Messages++
		s.Recipients += len(e.Recipients)
		if s.Oldest.IsZero() || e.Created.Before(s.Oldest) {
			s.Oldest = e.Created
		}
	}
	return s, nil
}
