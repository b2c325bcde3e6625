package config

import "fmt"

// Junk configures the built-in junk classifier (issue 13): mail arriving on the MX port is
// scored per account from what that account taught it (moving mail into and out of Junk
// over IMAP, `petrel junk train`) and filed into Junk from the threshold on.
type Junk struct {
	// enabled: classify inbound mail, add the X-Spam-Status field and file junk into Junk;
	// training from IMAP moves happens whenever this is on. Default true.
	Enabled bool `toml:"enabled"`
	// threshold: the score (0 not junk ... 1 junk) from which a message goes to Junk, for
	// accounts without their own (`petrel junk threshold`). An account that has trained
	// nothing scores every message 0.5. Default 0.9.
	Threshold float64 `toml:"threshold"`
}

func defaultJunk() Junk { return Junk{Enabled: true, Threshold: 0.9} }

func (c *Config) validateJunk() error {
	if t := c.Junk.Threshold; !(t > 0 && t <= 1) {
		return &Error{File: c.File, Key: "junk.threshold", Msg: fmt.Sprintf("%v is not a score above 0 and at most 1", t)}
	}
	return nil
}
