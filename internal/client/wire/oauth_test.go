package wire

import (
	"strings"
	"testing"
)

// TestOAuthInitialResponse: the initial responses as RFC 7628 §4.1 and Google's XOAUTH2
// description lay them out.
func TestOAuthInitialResponse(t *testing.T) {
	mech, ir, err := NewOAuthClient(MechOAuthBearer, "user@example.com", "vF9dft4qmT", "server.example.com", 143).Start()
	if err != nil || mech != "OAUTHBEARER" ||
		string(ir) != "n,a=user@example.com,\x01host=server.example.com\x01port=143\x01auth=Bearer vF9dft4qmT\x01\x01" {
		t.Fatalf("OAUTHBEARER: %s %q %v", mech, ir, err)
	}
	// RFC 5801 §4: ',' and '=' in the authzid are escaped.
	_, ir, _ = NewOAuthClient("oauthbearer", "a,b=c", "t", "", 0).Start()
	if string(ir) != "n,a=a=2Cb=3Dc,\x01auth=Bearer t\x01\x01" {
		t.Fatalf("escaped authzid: %q", ir)
	}
	mech, ir, _ = NewOAuthClient(MechXOAuth2, "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg", "", 0).Start()
	if mech != "XOAUTH2" || string(ir) != "user=someuser@example.com\x01auth=Bearer ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg\x01\x01" {
		t.Fatalf("XOAUTH2: %q", ir)
	}
	if _, _, err := NewOAuthClient("PLAIN", "u", "t", "", 0).Start(); err == nil {
		t.Fatal("an unknown mechanism started")
	}
}

// TestOAuthFailure: the error challenge is decoded and acknowledged (RFC 7628 §3.2.3: %x01
// for OAUTHBEARER; an empty response for XOAUTH2); a second challenge is a protocol error.
func TestOAuthFailure(t *testing.T) {
	for _, tt := range []struct {
		mech, challenge, resp, want string
	}{
		{MechOAuthBearer, `{"status":"invalid_token","scope":"example_scope","openid-configuration":"https://example.com/.well-known/openid-configuration"}`, "\x01", "token expired"},
		{MechXOAuth2, `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`, "", "malformed"},
		{MechXOAuth2, `{"status":"403"}`, "", "invalid scope"},
		{MechOAuthBearer, `not json`, "\x01", `"not json"`},
	} {
		c := NewOAuthClient(tt.mech, "u", "t", "", 0)
		resp, err := c.Next([]byte(tt.challenge))
		if err != nil || string(resp) != tt.resp || c.Failure == nil {
			t.Fatalf("%s %s: %q %v", tt.mech, tt.challenge, resp, err)
		}
		e := c.Refused(ErrProtocol)
		if !IsTokenRefused(e) || !strings.Contains(e.Error(), tt.want) {
			t.Fatalf("%s: %v, want %q", tt.challenge, e, tt.want)
		}
		if _, err := c.Next([]byte("{}")); err == nil {
			t.Fatal("a second challenge was answered")
		}
	}
	if NewOAuthClient(MechXOAuth2, "u", "t", "", 0).Refused(nil) != nil {
		t.Fatal("Refused(nil) is not nil")
	}
}
