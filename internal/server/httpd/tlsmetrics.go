package httpd

import (
	"context"
	"crypto/tls"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// TLS returns conf counting the TLS handshakes of one listener: each handshake that the
// server completes by protocol version, each that fails after the client's hello. It needs no
// change in the servers (their handshakes happen in several places: go-smtp's own, each
// STARTTLS, implicit TLS on first read): crypto/tls calls GetConfigForClient at the hello,
// VerifyConnection when a handshake (a resumed one too) is about to succeed, and cancels
// the hello's context when the handshake ends either way. A connection that sends no hello
// at all (a port scan, plain text on an implicit-TLS port) is not counted.
//
// Each handshake gets a shallow clone of the config, which crypto/tls allows and for which
// it keeps using the original's session ticket keys, so resumption works as before.
func (m *Metrics) TLS(listener string, conf *tls.Config) *tls.Config {
	if conf == nil {
		return nil
	}
	failed := m.tlsFail.WithLabelValues(listener)
	var byVersion sync.Map // version name -> prometheus.Counter
	ok := func(version uint16) {
		name := strings.ReplaceAll(tls.VersionName(version), " ", "")
		c, found := byVersion.Load(name)
		if !found {
			c, _ = byVersion.LoadOrStore(name, m.tlsOK.WithLabelValues(listener, name))
		}
		c.(prometheus.Counter).Inc()
	}
	base := conf
	out := conf.Clone()
	out.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c := base
		if base.GetConfigForClient != nil {
			alt, err := base.GetConfigForClient(hello)
			if err != nil {
				failed.Inc()
				return nil, err
			}
			if alt != nil {
				c = alt
			}
		}
		c = c.Clone()
		c.GetConfigForClient = nil
		var done atomic.Bool
		verify := c.VerifyConnection
		c.VerifyConnection = func(cs tls.ConnectionState) error {
			if verify != nil {
				if err := verify(cs); err != nil {
					return err
				}
			}
			done.Store(true)
			ok(cs.Version)
			return nil
		}
		context.AfterFunc(hello.Context(), func() {
			if !done.Load() {
				failed.Inc()
			}
		})
		return c, nil
	}
	return out
}
