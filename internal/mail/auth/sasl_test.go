package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/emersion/go-sasl"
)

// Our exchanges plug into go-sasl users (go-smtp) as they are.
var (
	_ sasl.Server = (*plainServer)(nil)
	_ sasl.Server = (*loginServer)(nil)
	_ sasl.Server = (*scramServer)(nil)
	_ sasl.Server = SASL(nil)
)

// step is one Next call: the response sent and what must come back.
type step struct {
	response  []byte // nil means no response (before an initial response)
	challenge string
	done      bool
	err       error // errors.Is target; nil means success
}

// runSteps drives one exchange through steps.
func runSteps(t *testing.T, x SASL, steps []step) {
	t.Helper()
	for i, st := range steps {
		challenge, done, err := x.Next(st.response)
		if st.err != nil {
			if !errors.Is(err, st.err) {
				t.Fatalf("step %d: Next(%q) error %v, want %v", i, st.response, err, st.err)
			}
			continue
		}
		if err != nil || done != st.done || string(challenge) != st.challenge {
			t.Fatalf("step %d: Next(%q) = %q, %v, %v; want %q, %v, nil",
				i, st.response, challenge, done, err, st.challenge, st.done)
		}
	}
}

func TestPLAIN(t *testing.T) {
	s, _ := newTestService(t)
	tests := []struct {
		name  string
		steps []step
		ok    bool
	}{
		{"initial response", []step{{response: []byte("\x00user@example.com\x00pencil"), done: true}}, true},
		{"no initial response", []step{
			{response: nil, challenge: ""},
			{response: []byte("\x00User@Example.com\x00pencil"), done: true},
		}, true},
		{"empty initial response", []step{
			{response: []byte{}, challenge: ""},
			{response: []byte("\x00user@example.com\x00pencil"), done: true},
		}, true},
		{"authzid equal", []step{{response: []byte("USER@example.com\x00user@example.com\x00pencil"), done: true}}, true},
		{"authzid other", []step{{response: []byte("admin@example.com\x00user@example.com\x00pencil"), err: ErrInvalid}}, false},
		{"wrong password", []step{{response: []byte("\x00user@example.com\x00pencil2"), err: ErrInvalid}}, false},
		{"unknown user", []step{{response: []byte("\x00nobody@example.com\x00pencil"), err: ErrInvalid}}, false},
		{"two fields", []step{{response: []byte("user@example.com\x00pencil"), err: ErrMalformed}}, false},
		{"four fields", []step{{response: []byte("\x00user@example.com\x00pencil\x00"), err: ErrMalformed}}, false},
		{"empty password", []step{{response: []byte("\x00user@example.com\x00"), err: ErrMalformed}}, false},
		{"empty twice", []step{{response: nil}, {response: []byte{}, err: ErrMalformed}}, false},
		{"used after done", []step{
			{response: []byte("\x00user@example.com\x00pencil"), done: true},
			{response: []byte("\x00user@example.com\x00pencil"), err: ErrMalformed},
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := s.NewSASL(context.Background(), "PLAIN", testRemote)
			if err != nil {
				t.Fatal(err)
			}
			runSteps(t, x, tt.steps)
			if got := x.Account().ID; (got == 7) != tt.ok {
				t.Errorf("Account().ID = %d, authenticated = %v", got, tt.ok)
			}
		})
	}
}

func TestLOGIN(t *testing.T) {
	s, _ := newTestService(t)
	tests := []struct {
		name  string
		steps []step
		ok    bool
	}{
		{"two challenges", []step{
			{response: nil, challenge: "Username:"},
			{response: []byte("user@example.com"), challenge: "Password:"},
			{response: []byte("pencil"), done: true},
		}, true},
		{"user name as initial response", []step{
			{response: []byte("user@example.com"), challenge: "Password:"},
			{response: []byte("pencil"), done: true},
		}, true},
		{"wrong password", []step{
			{response: []byte("user@example.com"), challenge: "Password:"},
			{response: []byte("pencil!"), err: ErrInvalid},
			{response: []byte("pencil"), err: ErrMalformed},
		}, false},
		{"empty user name", []step{
			{response: nil, challenge: "Username:"},
			{response: []byte{}, err: ErrMalformed},
		}, false},
		{"empty password", []step{
			{response: []byte("user@example.com"), challenge: "Password:"},
			{response: []byte{}, err: ErrMalformed},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x, err := s.NewSASL(context.Background(), "login", testRemote)
			if err != nil {
				t.Fatal(err)
			}
			runSteps(t, x, tt.steps)
			if got := x.Account().ID; (got == 7) != tt.ok {
				t.Errorf("Account().ID = %d, authenticated = %v", got, tt.ok)
			}
		})
	}
}
