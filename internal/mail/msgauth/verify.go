package msgauth

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-msgauth/dkim"

	"petrel/internal/mail/arc"
)

// Result is a method's result, with the names RFC 8601 §2.7 registers.
type Result string

const (
	None      Result = "none"
	Pass      Result = "pass"
	Fail      Result = "fail"
	SoftFail  Result = "softfail"
	Neutral   Result = "neutral"
	TempError Result = "temperror"
	PermError Result = "permerror"
)

// Disposition is what the DMARC policy asks the receiver to do with a failing message
// (RFC 7489 §6.3 p= and sp=, after pct sampling, §6.6.4).
type Disposition string

const (
	Accept     Disposition = "none"
	Quarantine Disposition = "quarantine"
	Reject     Disposition = "reject"
)

// Envelope is what the SMTP session knows of a message's origin.
type Envelope struct {
	RemoteIP netip.Addr // the client's address
	Helo     string     // the EHLO/HELO argument
	MailFrom string     // the reverse path; "" for the null sender <>
}

// Verifier checks inbound mail. It is safe for concurrent use; one serves the whole server.
type Verifier struct {
	Resolver   Resolver
	AuthServID string // our host name: the authserv-id of the Authentication-Results field

	// MaxSignatures bounds the DKIM signatures verified per message, and with them the DNS
	// look-ups for keys (one each). 0 means DefaultMaxSignatures. Signatures beyond the
	// bound are not evaluated (RFC 6376 §6.1: a verifier MAY limit them).
	MaxSignatures int
	// MaxHeaderBytes bounds the header section held in memory; 0 means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Timeout bounds one Verify's DNS work; 0 means DefaultTimeout. RFC 7208 §4.6.4 asks
	// for at least 20 seconds for SPF; a look-up cut short ends as temperror.
	Timeout time.Duration
	// Rand returns a number in [0, n) for DMARC pct sampling; nil means math/rand/v2.IntN.
	Rand func(n int) int

	// keys keeps parsed DKIM public keys by key record, made on first use: parsing an
	// RSA key costs half as much as checking a signature, and most mail comes from few
	// keys. go-msgauth has no hook for it: third_party/go-msgauth adds one (its patch).
	keysOnce sync.Once
	keys     *dkim.KeyCache
}

// keyCacheSize is the DKIM key records a Verifier keeps parsed (a few MB at most for
// RSA-4096 keys).
const keyCacheSize = 4096

func (v *Verifier) keyCache() *dkim.KeyCache {
	v.keysOnce.Do(func() { v.keys = dkim.NewKeyCache(keyCacheSize) })
	return v.keys
}

const (
	DefaultMaxSignatures = 5
	DefaultTimeout       = 20 * time.Second
)

// SPFResult is the SPF evaluation of the client for the MAIL FROM identity, or for the
// HELO identity when the reverse path is null (RFC 7208 §2.4).
type SPFResult struct {
	Result   Result
	Identity string // "mailfrom" or "helo"
	Sender   string // the address checked: MAIL FROM, or postmaster@HELO
	Domain   string // its domain
	Err      error  // why, for the log
}

// DKIMResult is the verification of one DKIM-Signature field.
type DKIMResult struct {
	Result     Result
	Domain     string // d=, the signing domain (SDID)
	Selector   string // s=
	Identifier string // i=, the AUID
	Algorithm  string // a=
	B          string // the first 8 characters of b= (RFC 6008), to tell signatures apart
	Err        error  // why not pass, for the log
}

// DMARCResult is the DMARC evaluation (RFC 7489 §6.6) of the RFC5322.From domain.
type DMARCResult struct {
	Result       Result
	From         string      // the From domain; "" if the From field has no usable address
	RecordDomain string      // where the policy was found: From or its organizational domain
	Policy       Disposition // p= or sp= that applies; "" without a policy
	Disposition  Disposition // what to do: the policy for a failure, after pct; else none
	Err          error
}

// Verdict is everything Verify concluded about one message.
type Verdict struct {
	SPF   SPFResult
	DKIM  []DKIMResult // in header order; empty when the message carries no signature
	DMARC DMARCResult
	// ARC is the validation of the message's ARC chain (RFC 8617 §5.2): none without
	// ARC sets. It is reported, and decides nothing here: DMARC does not consult it.
	ARC arc.Result
	// AuthResults is the Authentication-Results field (RFC 8601) for these results under our
	// authserv-id, folded, ending in CRLF: prepend it to the stored message.
	AuthResults string
}

// Disposition is the action the verdict asks for: Reject (refuse at DATA with 550 5.7.1,
// RFC 7489 §7.3 says a reject SHOULD happen in the SMTP transaction), Quarantine (deliver to
// Junk) or Accept.
func (v *Verdict) Disposition() Disposition {
	if v.DMARC.Disposition == "" {
		return Accept
	}
	return v.DMARC.Disposition
}

// Verify checks SPF, DKIM and DMARC for a message received from env, read from msg (the
// message as it arrived, before our trace fields: header and body). The body streams
// through the DKIM body hash; only the header section is held in memory.
//
// The error is only for a message that cannot be read (I/O error, ErrHeaderTooLarge); DNS
// failures are results (temperror), never errors, and never a pass.
func (v *Verifier) Verify(ctx context.Context, env Envelope, msg io.Reader) (*Verdict, error) {
	if v.Resolver == nil || v.AuthServID == "" || strings.ContainsAny(v.AuthServID, " \t\r\n;()\"") {
		return nil, errors.New("msgauth: Verifier needs a Resolver and an AuthServID (a host name)")
	}
	timeout := v.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res := checkedResolver{v.Resolver}

	br := bufio.NewReader(msg)
	hdr, err := readHeader(br, headerLimit(v.MaxHeaderBytes))
	if err != nil {
		return nil, fmt.Errorf("msgauth: reading header: %w", err)
	}
	fields := splitFields(hdr)

	// SPF needs only DNS: run it while the body is hashed for DKIM.
	spfDone := make(chan SPFResult, 1)
	go func() { spfDone <- checkSPF(ctx, res, env) }()

	verdict := &Verdict{}
	var body io.Reader = br
	var arcDone chan arcOutcome
	if hasARC(fields) {
		// ARC hashes the body too (the newest ARC-Message-Signature): it reads a
		// copy of what DKIM reads, in its own goroutine, and whatever DKIM leaves
		// is copied to it below.
		pr, pw := io.Pipe()
		body = io.TeeReader(br, pw)
		arcDone = make(chan arcOutcome, 1)
		go func() {
			r, err := arc.Verify(ctx, hdr, pr, res.LookupTXT)
			io.Copy(io.Discard, pr) // a chain refused early reads nothing: keep the writer going
			arcDone <- arcOutcome{r, err}
		}()
		defer func() {
			if arcDone != nil { // an early return: let the goroutine end
				pw.CloseWithError(io.ErrUnexpectedEOF)
				<-arcDone
			}
		}()
		verdict.DKIM, err = v.verifyDKIM(ctx, res, hdr, fields, body)
		if err == nil {
			_, err = io.Copy(io.Discard, body)
		}
		pw.CloseWithError(err)
		out := <-arcDone
		arcDone = nil
		if err == nil {
			err = out.err
		}
		verdict.ARC = out.res
	} else {
		verdict.DKIM, err = v.verifyDKIM(ctx, res, hdr, fields, body)
		verdict.ARC = arc.Result{Status: arc.None}
	}
	verdict.SPF = <-spfDone
	if err != nil {
		return nil, err
	}
	verdict.DMARC = v.checkDMARC(ctx, res, fields, verdict.SPF, verdict.DKIM)
	verdict.AuthResults = formatAuthResults(v.AuthServID, verdict)
	return verdict, nil
}

// checkSPF evaluates the sender's SPF policy with blitiri.com.ar/go/spf, which implements
// RFC 7208 §4-§7 (lookup limits of §4.6.4 included) and passes the RFC's test suite.
func checkSPF(ctx context.Context, res Resolver, env Envelope) SPFResult {
	helo := strings.TrimSuffix(strings.TrimSpace(env.Helo), ".")
	r := SPFResult{Identity: "mailfrom", Sender: env.MailFrom}
	if env.MailFrom == "" {
		// RFC 7208 §2.4: for the null reverse path, check "postmaster@" the HELO domain.
		r.Identity = "helo"
		r.Sender = "postmaster@" + helo
	}
	if at := strings.LastIndexByte(r.Sender, '@'); at >= 0 {
		// The last @: a quoted local part may hold one too.
		r.Domain = strings.ToLower(strings.TrimSuffix(r.Sender[at+1:], "."))
	}
	if r.Domain == "" || strings.HasPrefix(r.Domain, "[") || net.ParseIP(r.Domain) != nil {
		// An address literal HELO or a sender without a domain names no SPF record
		// (RFC 7208 §2.3, §4.3).
		r.Result = None
		return r
	}
	ip := net.IP(env.RemoteIP.Unmap().AsSlice())
	result, err := spf.CheckHostWithSender(ip, helo, r.Sender,
		spf.WithContext(ctx), spf.WithResolver(res))
	r.Result = Result(result)
	if err != nil && result != spf.Pass && !errors.Is(err, spf.ErrNoResult) {
		r.Err = err
	}
	return r
}

// verifyDKIM verifies up to MaxSignatures DKIM-Signature fields with go-msgauth, feeding it
// the header section already read and the rest of the message as a stream.
func (v *Verifier) verifyDKIM(ctx context.Context, res Resolver, hdr []byte, fields []field, body io.Reader) ([]DKIMResult, error) {
	var sigs []field
	for _, f := range fields {
		if strings.EqualFold(f.name, "DKIM-Signature") {
			sigs = append(sigs, f)
		}
	}
	if len(sigs) == 0 {
		return nil, nil // nothing to hash: the body is not read at all
	}
	max := v.MaxSignatures
	if max <= 0 {
		max = DefaultMaxSignatures
	}
	// One look-up per verified signature; the count is a second guard should the library
	// ever look up more. Several signatures are verified in parallel goroutines.
	var lookups atomic.Int32
	opts := &dkim.VerifyOptions{
		KeyCache:         v.keyCache(),
		MaxVerifications: max,
		LookupTXT: func(name string) ([]string, error) {
			if int(lookups.Add(1)) > max {
				return nil, &net.DNSError{Err: "too many DKIM key look-ups", Name: name}
			}
			return res.LookupTXT(ctx, name)
		},
	}
	hdr = terminated(hdr)
	verifs, err := dkim.VerifyWithOptions(&message{hdr: hdr, body: body}, opts)
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// Not a signature result: the message could not be read.
		return nil, fmt.Errorf("msgauth: DKIM: %w", err)
	}
	out := make([]DKIMResult, 0, len(verifs))
	for i, vf := range verifs {
		var r DKIMResult
		if i < len(sigs) {
			r = describeSignature(sigs[i].value())
		}
		r.Domain = strings.ToLower(vf.Domain)
		if vf.Identifier != "" && !strings.HasPrefix(vf.Identifier, "@") {
			r.Identifier = vf.Identifier
		}
		r.Err = vf.Err
		switch {
		case vf.Err == nil:
			r.Result = Pass
		case dkim.IsTempFail(vf.Err):
			r.Result = TempError
		case dkim.IsPermFail(vf.Err):
			r.Result = PermError
		default:
			r.Result = Fail
		}
		out = append(out, r)
	}
	return out, nil
}

// describeSignature reads the s=, a= and b= tags of a DKIM-Signature value for the report;
// verification itself is go-msgauth's.
func describeSignature(v string) DKIMResult {
	var r DKIMResult
	for _, tag := range strings.Split(v, ";") {
		k, val, ok := strings.Cut(tag, "=")
		if !ok {
			continue
		}
		val = strings.Join(strings.Fields(val), "")
		switch strings.TrimSpace(k) {
		case "s":
			r.Selector = val
		case "a":
			r.Algorithm = strings.ToLower(val)
		case "b":
			r.B = val[:min(8, len(val))]
		}
	}
	return r
}

// arcOutcome is what the ARC goroutine of Verify hands back.
type arcOutcome struct {
	res arc.Result
	err error
}

// hasARC reports whether the header has an ARC field of any kind.
func hasARC(fields []field) bool {
	for _, f := range fields {
		if len(f.name) > 4 && strings.EqualFold(f.name[:4], "ARC-") {
			return true
		}
	}
	return false
}

// randIntN is the default Rand.
func randIntN(n int) int { return rand.IntN(n) }
