package msgauth

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-msgauth/authres"
)

// formatAuthResults writes the Authentication-Results field (RFC 8601 §2.2) for a verdict:
// one result per line (folded with CRLF TAB), values quoted by go-msgauth's authres. DKIM
// results carry header.s, header.a and header.b (RFC 6008) besides header.d and header.i,
// so that a reader can tell which signature of several passed.
func formatAuthResults(authservID string, v *Verdict) string {
	var results []authres.Result

	spfRes := &authres.SPFResult{Value: authres.ResultValue(v.SPF.Result)}
	if v.SPF.Identity == "helo" {
		spfRes.Helo = v.SPF.Domain
	} else {
		spfRes.From = v.SPF.Sender
	}
	if v.SPF.Err != nil {
		spfRes.Reason = reason(v.SPF.Err)
	}
	results = append(results, spfRes)

	if len(v.DKIM) == 0 {
		results = append(results, &authres.DKIMResult{Value: authres.ResultNone})
	}
	for _, d := range v.DKIM {
		params := map[string]string{
			"header.d": d.Domain,
			"header.i": d.Identifier,
			"header.s": d.Selector,
			"header.a": d.Algorithm,
			"header.b": d.B,
		}
		if d.Err != nil {
			params["reason"] = reason(d.Err)
		}
		results = append(results, &authres.GenericResult{Method: "dkim", Value: authres.ResultValue(d.Result), Params: params})
	}

	dm := &authres.DMARCResult{Value: authres.ResultValue(v.DMARC.Result), From: v.DMARC.From}
	switch {
	case v.DMARC.Result == Fail:
		dm.Reason = "p=" + string(v.DMARC.Policy) + " disposition=" + string(v.DMARC.Disposition)
	case v.DMARC.Err != nil:
		dm.Reason = reason(v.DMARC.Err)
	}
	results = append(results, dm)

	// RFC 8617 §10.1: the arc method; the chain's length for the reader.
	ar := &authres.GenericResult{Method: "arc", Value: authres.ResultValue(v.ARC.Status), Params: map[string]string{}}
	if ar.Value == "" {
		ar.Value = authres.ResultNone
	}
	if v.ARC.Instances > 0 {
		ar.Params["reason"] = "sets=" + strconv.Itoa(v.ARC.Instances)
		if v.ARC.Err != nil {
			ar.Params["reason"] += " " + reason(v.ARC.Err)
		}
	}
	results = append(results, ar)

	var b strings.Builder
	b.WriteString("Authentication-Results: " + authservID)
	for _, r := range cleanResults(results) {
		// authres.Format with an empty identity gives "; method=value params".
		s := strings.TrimSpace(strings.TrimPrefix(authres.Format("", []authres.Result{r}), ";"))
		b.WriteString(";\r\n\t" + s)
	}
	b.WriteString("\r\n")
	return b.String()
}

// reason makes an error a short single-line text for a reason= value.
func reason(err error) string {
	s := clean(err.Error())
	if len(s) > 200 {
		s = s[:200]
		for len(s) > 0 && s[len(s)-1] >= 0x80 {
			s = s[:len(s)-1] // do not leave half a UTF-8 character
		}
	}
	return s
}

// clean makes text from the message or DNS (a d= or s= tag, an error quoting a record)
// safe inside the header field: no line breaks or other control characters, and no
// backslash or double quote, which authres quotes without escaping the backslash, so a
// value ending in one would swallow the closing quote.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '\\' || r == '"' || r == utf8.RuneError {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// cleanResults applies clean to every value the results carry.
func cleanResults(results []authres.Result) []authres.Result {
	for _, r := range results {
		switch r := r.(type) {
		case *authres.SPFResult:
			r.Reason, r.From, r.Helo = clean(r.Reason), clean(r.From), clean(r.Helo)
		case *authres.DMARCResult:
			r.Reason, r.From = clean(r.Reason), clean(r.From)
		case *authres.GenericResult:
			for k, v := range r.Params {
				r.Params[k] = clean(v)
			}
		}
	}
	return results
}
