package scram

import "testing"

// TestSCRAMRFC7677 replays the example of RFC 7677 §3.
func TestSCRAMRFC7677(t *testing.T) {
	s := NewClient("user", "pencil")
	s.nonce = "rOprNGfwEbeRWgbNEkqO"
	mech, ir, err := s.Start()
	if err != nil || mech != "SCRAM-SHA-256" || string(ir) != "n,,n=user,r=rOprNGfwEbeRWgbNEkqO" {
		t.Fatalf("Start = %s %q %v", mech, ir, err)
	}
	resp, err := s.Next([]byte("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"))
	want := "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
	if err != nil || string(resp) != want {
		t.Fatalf("client-final = %q %v", resp, err)
	}
	if s.ServerVerified() {
		t.Fatal("verified too early")
	}
	if _, err := s.Next([]byte("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")); err != nil {
		t.Fatal(err)
	}
	if !s.ServerVerified() {
		t.Fatal("not verified")
	}
}

func TestSCRAMRejects(t *testing.T) {
	for _, tt := range []struct{ first, final string }{
		{"r=OTHERNONCE,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", ""},            // nonce not ours
		{"r=abc,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", ""},                   // nonce not extended
		{"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1", ""},                   // too few iterations
		{"r=abcdef,s=!!,i=4096", ""},                                      // bad salt
		{"m=ext,r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", ""},          // mandatory extension
		{"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "v=AAAA"},          // wrong signature
		{"r=abcdef,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "e=invalid-proof"}, // server error
	} {
		s := NewClient("user", "pencil")
		s.nonce = "abc"
		s.Start()
		_, err := s.Next([]byte(tt.first))
		if tt.final == "" {
			if err == nil {
				t.Errorf("%q accepted", tt.first)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Next([]byte(tt.final)); err == nil || s.ServerVerified() {
			t.Errorf("%q accepted", tt.final)
		}
	}
}

func TestSASLName(t *testing.T) {
	if got := saslName("a=b,c"); got != "a=3Db=2Cc" {
		t.Fatal(got)
	}
	if got := saslName("I\u00ADX="); got != "IX=3D" { // prepared, then escaped
		t.Fatalf("%q", got)
	}
}
