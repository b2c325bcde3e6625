package auth

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"petrel/internal/lib/scram"
	"petrel/internal/store"
)

// TestSCRAMRFC7677 replays the example exchange of RFC 7677 §3 byte for byte.
func TestSCRAMRFC7677(t *testing.T) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	keys, err := deriveSCRAMKeys("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	dir := &fakeDir{accounts: map[string]store.Account{
		"user": {ID: 1, Address: "user", Credentials: store.Credentials{SCRAMSHA256: keys.String()}},
	}}
	s := New(dir, Config{FailureDelay: time.Millisecond}, nil)
	s.newNonce = func() string { return "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0" }
	x, err := s.NewSASL(context.Background(), "SCRAM-SHA-256", testRemote)
	if err != nil {
		t.Fatal(err)
	}
	runSteps(t, x, []step{
		{
			response:  []byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"),
			challenge: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
		},
		{
			response:  []byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
			challenge: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
		{response: []byte{}, done: true},
	})
	if x.Account().ID != 1 {
		t.Errorf("Account() = %+v", x.Account())
	}
}

// scramClient is a client side of SCRAM-SHA-256 for tests; it implements go-sasl's
// sasl.Client. The tamper fields produce broken clients.
type scramClient struct {
	username, authzid, password string
	flag                        string // gs2-cbind-flag; default "n"

	tamperCbind string // sent as c= instead of the GS2 header
	tamperNonce string // appended to the nonce in client-final
	tamperFinal string // sent after v= instead of the empty response

	step            int
	gs2Header       string
	clientFirstBare string
	serverSignature string
}

func (c *scramClient) Start() (string, []byte, error) {
	if c.flag == "" {
		c.flag = "n"
	}
	c.gs2Header = c.flag + ","
	if c.authzid != "" {
		c.gs2Header += "a=" + encodeSASLName(c.authzid)
	}
	c.gs2Header += ","
	c.clientFirstBare = "n=" + encodeSASLName(c.username) + ",r=" + randomNonce()
	return "SCRAM-SHA-256", []byte(c.gs2Header + c.clientFirstBare), nil
}

func (c *scramClient) Next(challenge []byte) ([]byte, error) {
	c.step++
	switch c.step {
	case 1:
		return c.final(string(challenge))
	case 2:
		if string(challenge) != "v="+c.serverSignature {
			return nil, fmt.Errorf("server-final %q, want v=%s", challenge, c.serverSignature)
		}
		if c.tamperFinal != "" {
			return []byte(c.tamperFinal), nil
		}
		return []byte{}, nil // answer the challenge that carried v= (RFC 4954 §4)
	}
	return nil, errors.New("unexpected challenge")
}

func (c *scramClient) final(serverFirst string) ([]byte, error) {
	f := strings.Split(serverFirst, ",")
	if len(f) != 3 || !strings.HasPrefix(f[0], "r=") || !strings.HasPrefix(f[1], "s=") || !strings.HasPrefix(f[2], "i=") {
		return nil, fmt.Errorf("bad server-first %q", serverFirst)
	}
	nonce := f[0][2:]
	if !strings.HasPrefix(nonce, strings.Split(c.clientFirstBare, ",r=")[1]) {
		return nil, errors.New("server nonce does not extend ours")
	}
	salt, err := base64.StdEncoding.DecodeString(f[1][2:])
	if err != nil {
		return nil, err
	}
	iter, err := strconv.Atoi(f[2][2:])
	if err != nil {
		return nil, err
	}
	pw, err := normalizePassword(c.password) // clients apply SASLprep (RFC 5802 §2.2)
	if err != nil {
		return nil, err
	}
	salted, err := pbkdf2.Key(sha256.New, pw, salt, iter, sha256.Size)
	if err != nil {
		return nil, err
	}
	clientKey := scram.HMAC(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	cbind := c.gs2Header
	if c.tamperCbind != "" {
		cbind = c.tamperCbind
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(cbind)) + ",r=" + nonce + c.tamperNonce
	authMessage := []byte(c.clientFirstBare + "," + serverFirst + "," + withoutProof)
	proof := scram.HMAC(storedKey[:], authMessage)
	subtle.XORBytes(proof, proof, clientKey)
	c.serverSignature = base64.StdEncoding.EncodeToString(scram.HMAC(scram.HMAC(salted, []byte("Server Key")), authMessage))
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

func encodeSASLName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// runSCRAM drives a server exchange with a client like go-smtp's AUTH loop does and returns
// the server's error and the account.
func runSCRAM(s *Service, c *scramClient, initialResponse bool) (store.Account, error) {
	x, err := s.NewSASL(context.Background(), "SCRAM-SHA-256", testRemote)
	if err != nil {
		return store.Account{}, err
	}
	_, resp, _ := c.Start()
	if !initialResponse {
		challenge, done, err := x.Next(nil)
		if err != nil || done || len(challenge) != 0 {
			return store.Account{}, fmt.Errorf("no initial response: got %q, %v, %v", challenge, done, err)
		}
	}
	for {
		challenge, done, err := x.Next(resp)
		if err != nil {
			return store.Account{}, err
		}
		if done {
			return x.Account(), nil
		}
		if resp, err = c.Next(challenge); err != nil {
			return store.Account{}, fmt.Errorf("client: %w", err)
		}
	}
}

func TestSCRAM(t *testing.T) {
	s, dir := newTestService(t)
	dir.accounts[`"a,b=c"@example.com`] = store.Account{ID: 8, Credentials: credPencil()}
	dir.accounts["nokeys@example.com"] = store.Account{ID: 9, Credentials: store.Credentials{PasswordHash: credPencil().PasswordHash}}
	tests := []struct {
		name   string
		client scramClient
		noIR   bool
		wantID int64
		err    error
	}{
		{name: "ok", client: scramClient{username: "user@example.com", password: "pencil"}, wantID: 7},
		{name: "no initial response", client: scramClient{username: "user@example.com", password: "pencil"}, noIR: true, wantID: 7},
		{name: "case", client: scramClient{username: "User@EXAMPLE.com", password: "pencil"}, wantID: 7},
		{name: "y flag", client: scramClient{username: "user@example.com", password: "pencil", flag: "y"}, wantID: 7},
		{name: "authzid same", client: scramClient{username: "user@example.com", authzid: "USER@example.com", password: "pencil"}, wantID: 7},
		{name: "escaped name", client: scramClient{username: `"A,B=C"@example.com`, password: "pencil"}, wantID: 8},
		{name: "normalized password", client: scramClient{username: "user@example.com", password: "pen\u00ADcil"}, wantID: 7},

		{name: "wrong password", client: scramClient{username: "user@example.com", password: "pencil2"}, err: ErrInvalid},
		{name: "unknown user", client: scramClient{username: "nobody@example.com", password: "pencil"}, err: ErrInvalid},
		{name: "no SCRAM keys", client: scramClient{username: "nokeys@example.com", password: "pencil"}, err: ErrInvalid},
		{name: "authzid other", client: scramClient{username: "user@example.com", authzid: "admin@example.com", password: "pencil"}, err: errAuthzid},
		{name: "channel binding", client: scramClient{username: "user@example.com", password: "pencil", flag: "p=tls-exporter"}, err: errChannelBinding},
		{name: "GS2 header downgraded", client: scramClient{username: "user@example.com", password: "pencil", flag: "y", tamperCbind: "n,,"}, err: ErrMalformed},
		{name: "nonce changed", client: scramClient{username: "user@example.com", password: "pencil", tamperNonce: "x"}, err: ErrMalformed},
		{name: "data after v=", client: scramClient{username: "user@example.com", password: "pencil", tamperFinal: "more"}, err: ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.client
			acct, err := runSCRAM(s, &c, !tt.noIR)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("error %v, want %v", err, tt.err)
				}
				if acct.ID != 0 {
					t.Errorf("failed exchange has account %d", acct.ID)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if acct.ID != tt.wantID {
				t.Errorf("account %d, want %d", acct.ID, tt.wantID)
			}
		})
	}
}

// TestSCRAMUnknownUserLooksReal checks that an unknown user gets a plausible, stable salt.
func TestSCRAMUnknownUserLooksReal(t *testing.T) {
	s, _ := newTestService(t)
	first := func(user string) string {
		x, _ := s.NewSASL(context.Background(), "SCRAM-SHA-256", testRemote)
		c, _, err := x.Next([]byte("n,,n=" + user + ",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(string(c), ",") // drop the nonce
		return rest
	}
	a, b, c := first("nobody@example.com"), first("nobody@example.com"), first("other@example.com")
	if a != b {
		t.Errorf("salt for one unknown user changed: %q, %q", a, b)
	}
	if a == c {
		t.Errorf("two unknown users share a salt: %q", a)
	}
	real := first("user@example.com")
	if len(a) != len(real) || !strings.HasSuffix(a, ",i=4096") {
		t.Errorf("unknown user %q does not look like a real account %q", a, real)
	}
}

func TestParseClientFirst(t *testing.T) {
	good := []struct {
		in                              string
		gs2, authzid, user, nonce, bare string
	}{
		{"n,,n=user,r=abc", "n,,", "", "user", "abc", "n=user,r=abc"},
		{"y,,n=user,r=abc", "y,,", "", "user", "abc", "n=user,r=abc"},
		{"n,a=adm=2Cin,n=u=3Dser,r=a~c", "n,a=adm=2Cin,", "adm,in", "u=ser", "a~c", "n=u=3Dser,r=a~c"},
		{"n,,n=user,r=abc,x=ext,y=", "n,,", "", "user", "abc", "n=user,r=abc,x=ext,y="},
		{"n,,n=üser,r=abc", "n,,", "", "üser", "abc", "n=üser,r=abc"},
	}
	for _, tt := range good {
		cf, err := parseClientFirst([]byte(tt.in))
		if err != nil {
			t.Errorf("parseClientFirst(%q): %v", tt.in, err)
			continue
		}
		want := clientFirst{gs2Header: tt.gs2, authzid: tt.authzid, username: tt.user, nonce: tt.nonce, bare: tt.bare}
		if cf != want {
			t.Errorf("parseClientFirst(%q) = %+v, want %+v", tt.in, cf, want)
		}
	}
	bad := []string{
		"",
		"n",
		"n,",
		"n,,",
		"x,,n=user,r=abc",
		"p=tls-unique,,n=user,r=abc",
		"n,b=x,n=user,r=abc",
		"n,a=,n=user,r=abc",
		"n,,m=ext,n=user,r=abc", // reserved mandatory extension (RFC 5802 §5.1)
		"n,,n=,r=abc",
		"n,,n=us=2Xer,r=abc",
		"n,,n=user=,r=abc",
		"n,,n=user=2,r=abc",
		"n,,r=abc,n=user",
		"n,,n=user",
		"n,,n=user,r=",
		"n,,n=user,r=a b",
		"n,,n=user,r=abc,m=x",
		"n,,n=user,r=abc,bad",
		"n,,n=user,r=abc,",
		"n,,n=\xff,r=abc",
		"n,,n=user,r=" + strings.Repeat("a", maxNonce+1),
	}
	for _, in := range bad {
		if cf, err := parseClientFirst([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseClientFirst(%q) = %+v, %v; want ErrMalformed", in, cf, err)
		}
	}
}

func TestParseClientFinal(t *testing.T) {
	proof := base64.StdEncoding.EncodeToString(make([]byte, 32))
	cf, err := parseClientFinal([]byte("c=biws,r=abc,x=1,p=" + proof))
	if err != nil {
		t.Fatal(err)
	}
	if string(cf.channelBinding) != "n,," || cf.nonce != "abc" || cf.withoutProof != "c=biws,r=abc,x=1" || len(cf.proof) != 32 {
		t.Errorf("parsed %+v", cf)
	}
	for _, in := range []string{
		"",
		"c=biws,r=abc",
		"c=biws,r=abc,p=",
		"c=biws,r=abc,p=AAAA",
		"c=biws,r=abc,p=" + proof + "x",
		"c=b!ws,r=abc,p=" + proof,
		"r=abc,c=biws,p=" + proof,
		"c=biws,p=" + proof,
		"c=biws,r=,p=" + proof,
		"c=biws,r=abc,m=1,p=" + proof,
		"c=biws,r=abc,p=x,p=" + proof,
	} {
		if cf, err := parseClientFinal([]byte(in)); !errors.Is(err, ErrMalformed) {
			t.Errorf("parseClientFinal(%q) = %+v, %v; want ErrMalformed", in, cf, err)
		}
	}
}

func FuzzSCRAMClientFirst(f *testing.F) {
	for _, s := range []string{
		"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
		"y,a=adm=2Cin,n=u=3Dser,r=abc,x=1",
		"p=tls-unique,,n=user,r=abc",
		"n,,m=x,n=user,r=abc",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		cf, err := parseClientFirst(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if cf.gs2Header+cf.bare != string(msg) {
			t.Fatalf("header %q + bare %q != message %q", cf.gs2Header, cf.bare, msg)
		}
		if cf.username == "" || !validNonce(cf.nonce) {
			t.Fatalf("accepted %+v", cf)
		}
		if n := encodeSASLName(cf.username); !strings.HasPrefix(cf.bare, "n="+n+",") {
			t.Fatalf("username %q does not re-encode to the message's %q", cf.username, cf.bare)
		}
	})
}

func FuzzSCRAMClientFinal(f *testing.F) {
	f.Add([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	f.Add([]byte("c=eSws,r=abc,x=1,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="))
	f.Fuzz(func(t *testing.T, msg []byte) {
		cf, err := parseClientFinal(msg)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if len(cf.proof) != sha256.Size || !validNonce(cf.nonce) || !strings.HasPrefix(string(msg), cf.withoutProof+",p=") {
			t.Fatalf("accepted %+v", cf)
		}
	})
}

// FuzzSCRAMExchange feeds arbitrary messages to a server exchange: it must never panic,
// succeed, or report done without an error-free path.
func FuzzSCRAMExchange(f *testing.F) {
	f.Add([]byte("n,,n=user@example.com,r=abc"), []byte("c=biws,r=abcNONCE,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), []byte{})
	f.Add([]byte("y,,n=nobody@example.com,r=abc"), []byte("c=eSws,r=abcNONCE,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), []byte{})
	s, _ := newTestService(f)
	s.throttle.base, s.throttle.max = 0, 0
	s.newNonce = func() string { return "NONCE" }
	f.Fuzz(func(t *testing.T, first, final, last []byte) {
		x, _ := s.NewSASL(context.Background(), "SCRAM-SHA-256", testRemote)
		for _, msg := range [][]byte{first, final, last} {
			_, done, err := x.Next(msg)
			if done && err == nil {
				t.Fatalf("authenticated without the password: %q %q %q", first, final, last)
			}
			if err != nil {
				if !errors.Is(err, ErrInvalid) {
					t.Fatalf("error %v does not wrap ErrInvalid", err)
				}
				return
			}
		}
	})
}
