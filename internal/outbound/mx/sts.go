package mx

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Mode is an MTA-STS policy mode (RFC 8461 §5).
type Mode string

const (
	ModeEnforce Mode = "enforce" // deliver only to matching MX hosts over verified TLS
	ModeTesting Mode = "testing" // report failures, deliver anyway
	ModeNone    Mode = "none"    // the domain withdrew its policy
)

// Policy is a parsed MTA-STS policy (RFC 8461 §3.2).
type Policy struct {
	Mode   Mode
	MX     []string // host name patterns; "*." matches exactly one leftmost label
	MaxAge time.Duration
}

// maxMaxAge is the largest max_age RFC 8461 §3.2 allows (about a year).
const maxMaxAge = 31557600

// maxPolicySize bounds the policy body a server can make us read (RFC 8461 §3.3: senders
// may limit it to 64 KiB).
const maxPolicySize = 64 << 10

// ParsePolicy parses a policy file: "key: value" lines ending in CRLF or LF (RFC 8461 §3.2).
// Unknown keys are ignored; version, mode and max_age must appear once, mx at least once
// unless the mode is none.
func ParsePolicy(b []byte) (*Policy, error) {
	p := &Policy{}
	seen := map[string]bool{}
	for i, line := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("MTA-STS policy line %d: no colon", i+1)
		}
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		if key != "mx" && seen[key] {
			return nil, fmt.Errorf("MTA-STS policy: %s given twice", key)
		}
		seen[key] = true
		switch key {
		case "version":
			if value != "STSv1" {
				return nil, fmt.Errorf("MTA-STS policy: version %q, want STSv1", value)
			}
		case "mode":
			switch Mode(value) {
			case ModeEnforce, ModeTesting, ModeNone:
				p.Mode = Mode(value)
			default:
				return nil, fmt.Errorf("MTA-STS policy: unknown mode %q", value)
			}
		case "max_age":
			n, err := strconv.ParseUint(value, 10, 32)
			if err != nil || len(value) > 10 || n > maxMaxAge {
				return nil, fmt.Errorf("MTA-STS policy: bad max_age %q", value)
			}
			p.MaxAge = time.Duration(n) * time.Second
		case "mx":
			if value == "" || strings.ContainsAny(value, " \t") {
				return nil, fmt.Errorf("MTA-STS policy: bad mx %q", value)
			}
			p.MX = append(p.MX, strings.ToLower(strings.TrimSuffix(value, ".")))
		}
	}
	for _, k := range []string{"version", "mode", "max_age"} {
		if !seen[k] {
			return nil, fmt.Errorf("MTA-STS policy: no %s", k)
		}
	}
	if p.Mode != ModeNone && len(p.MX) == 0 {
		return nil, errors.New("MTA-STS policy: no mx")
	}
	return p, nil
}

// Matches reports whether an MX host name matches one of the policy's patterns (RFC 8461
// §4.1): exactly, or "*.example.com" for one more label, not "example.com" itself and not
// two more labels.
func (p *Policy) Matches(host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, pat := range p.MX {
		if rest, ok := strings.CutPrefix(pat, "*."); ok {
			if label, parent, ok := strings.Cut(host, "."); ok && label != "" && parent == rest {
				return true
			}
		} else if host == pat {
			return true
		}
	}
	return false
}

// CachedPolicy is a policy as the cache keeps it.
type CachedPolicy struct {
	Policy  Policy
	ID      string    // the id of the _mta-sts TXT record it was fetched under
	Fetched time.Time // it expires at Fetched + Policy.MaxAge
}

// PolicyCache keeps fetched policies across attempts (RFC 8461 §5.1: a cached, unexpired
// policy is used even when the TXT record is gone, which defeats an attacker who strips it).
// The queue backs it with the store; MemoryCache serves tests and a first version.
type PolicyCache interface {
	Get(ctx context.Context, domain string) (CachedPolicy, bool, error)
	Put(ctx context.Context, domain string, p CachedPolicy) error
}

// MemoryCache is a PolicyCache in memory, safe for concurrent use.
type MemoryCache struct {
	mu sync.Mutex
	m  map[string]CachedPolicy
}

func (c *MemoryCache) Get(_ context.Context, domain string) (CachedPolicy, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.m[domain]
	return p, ok, nil
}

func (c *MemoryCache) Put(_ context.Context, domain string, p CachedPolicy) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]CachedPolicy{}
	}
	c.m[domain] = p
	return nil
}

// STS finds the MTA-STS policy of a domain: the TXT record, the cache, the HTTPS fetch.
// Resolver and Cache are required.
type STS struct {
	Resolver Resolver
	// HTTP fetches policies; nil means a client with the system's roots. Redirects are
	// never followed (RFC 8461 §3.3), whatever the client says.
	HTTP  *http.Client
	Cache PolicyCache
	Now   func() time.Time // default time.Now
	Log   *slog.Logger     // may be nil
	// FetchTimeout bounds one policy fetch (default 30s).
	FetchTimeout time.Duration
}

// Policy returns the policy that applies to domain, nil when there is none (or mode none).
// It never fails a delivery by itself: a missing or broken policy means no policy (RFC 8461
// §5.1), unless a cached one is still valid. The error is for the log only.
func (s *STS) Policy(ctx context.Context, domain string) (*Policy, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	cached, haveCached, err := s.Cache.Get(ctx, domain)
	if err != nil {
		haveCached = false
	}
	valid := haveCached && now.Before(cached.Fetched.Add(cached.Policy.MaxAge))
	use := func(p *Policy, err error) (*Policy, error) {
		if p == nil || p.Mode == ModeNone {
			return nil, err
		}
		return p, err
	}
	fromCache := func(err error) (*Policy, error) {
		if valid {
			p := cached.Policy
			return use(&p, err)
		}
		return nil, err
	}

	id, err := s.lookupID(ctx, domain)
	if err != nil {
		return fromCache(err)
	}
	if valid && id == cached.ID {
		return fromCache(nil)
	}
	p, err := s.fetch(ctx, domain)
	if err != nil {
		return fromCache(err)
	}
	if err := s.Cache.Put(ctx, domain, CachedPolicy{Policy: *p, ID: id, Fetched: now}); err != nil && s.Log != nil {
		s.Log.Warn("MTA-STS cache", "domain", domain, "err", err)
	}
	return use(p, nil)
}

// lookupID reads the id of the _mta-sts TXT record (RFC 8461 §3.1). Records not starting
// with "v=STSv1" are ignored; anything but exactly one is "no policy announced".
func (s *STS) lookupID(ctx context.Context, domain string) (string, error) {
	txts, _, err := s.Resolver.LookupTXT(ctx, "_mta-sts."+domain)
	if err != nil {
		return "", err
	}
	var ids []string
	for _, txt := range txts {
		if !strings.HasPrefix(txt, "v=STSv1") {
			continue
		}
		id := ""
		for i, field := range strings.Split(txt, ";") {
			k, v, _ := strings.Cut(strings.TrimSpace(field), "=")
			if i == 0 && (k != "v" || v != "STSv1") {
				id = ""
				break
			}
			if k == "id" {
				id = v
			}
		}
		if id == "" || len(id) > 32 || strings.IndexFunc(id, func(r rune) bool {
			return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
		}) >= 0 {
			return "", fmt.Errorf("MTA-STS TXT record of %s: bad id in %q", domain, txt)
		}
		ids = append(ids, id)
	}
	if len(ids) != 1 {
		return "", fmt.Errorf("MTA-STS: %d STSv1 TXT records at _mta-sts.%s", len(ids), domain)
	}
	return ids[0], nil
}

// fetch gets https://mta-sts.DOMAIN/.well-known/mta-sts.txt (RFC 8461 §3.3): HTTPS with a
// certificate valid for that name, status 200, no redirects, text/plain, bounded size.
func (s *STS) fetch(ctx context.Context, domain string) (*Policy, error) {
	client := http.Client{}
	if s.HTTP != nil {
		client = *s.HTTP
	}
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	timeout := s.FetchTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("MTA-STS fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("MTA-STS fetch %s: status %s", url, resp.Status)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, fmt.Errorf("MTA-STS fetch %s: content type %q, want text/plain", url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(bufio.NewReader(resp.Body), maxPolicySize+1))
	if err != nil {
		return nil, fmt.Errorf("MTA-STS fetch %s: %w", url, err)
	}
	if len(body) > maxPolicySize {
		return nil, fmt.Errorf("MTA-STS fetch %s: policy larger than %d bytes", url, maxPolicySize)
	}
	return ParsePolicy(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")))
}
