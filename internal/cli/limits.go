package cli

import (
	"flag"
	"fmt"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"petrel/internal/store"
)

// `petrel account limits`: an account's sending limits (issue 11) and what it used of them.

func limitsCommand() command {
	return command{
		noun: "account", verb: "limits",
		args: "ADDRESS [--hour-messages N] [--hour-recipients N] [--day-messages N] [--day-recipients N]",
		help: "show an account's sending limits and usage; set its own limits",
		more: `Without flags, prints each limit (the account's own, or the [sending] default of the
config), what the account submitted in the current clock hour and UTC day, and when each
window resets. Each flag sets the account's own limit: a number (0 means no limit), or
"default" to follow the config again. Limits are checked at submission: over one, MAIL or
RCPT gets 451 4.7.1 with the limit and its reset time.`,
		flags: func() *flag.FlagSet { return limitsFlags(&limitsOptions{}) },
		run:   accountLimits,
	}
}

// limitValue is one flag: unset, "default" (store.Inherit) or a number.
type limitValue struct {
	set bool
	v   int
}

func (l *limitValue) String() string {
	switch {
	case !l.set:
		return ""
	case l.v == store.Inherit:
		return "default"
	}
	return strconv.Itoa(l.v)
}

func (l *limitValue) Set(s string) error {
	if s == "default" {
		l.set, l.v = true, store.Inherit
		return nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return fmt.Errorf("want a number (0: no limit) or \"default\", not %q", s)
	}
	l.set, l.v = true, n
	return nil
}

type limitsOptions struct {
	hourMessages, hourRecipients, dayMessages, dayRecipients limitValue
}

func limitsFlags(o *limitsOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("petrel account limits", flag.ContinueOnError)
	fs.Var(&o.hourMessages, "hour-messages", "messages per clock hour (`N`, 0: none, or default)")
	fs.Var(&o.hourRecipients, "hour-recipients", "recipients per clock hour (`N`, 0: none, or default)")
	fs.Var(&o.dayMessages, "day-messages", "messages per UTC day (`N`, 0: none, or default)")
	fs.Var(&o.dayRecipients, "day-recipients", "recipients per UTC day (`N`, 0: none, or default)")
	return fs
}

func accountLimits(e *Env, args []string) error {
	const usage = "account limits ADDRESS [--hour-messages N] [--hour-recipients N] [--day-messages N] [--day-recipients N]"
	var o limitsOptions
	fs := limitsFlags(&o)
	fs.SetOutput(e.Stderr)
	// The address may come first (as in the other account commands) or after the flags.
	var addrArg []string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		addrArg, args = args[:1], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return fmt.Errorf("%w: petrel %s", ErrUsage, usage)
	}
	if err := exactArgs(append(addrArg, fs.Args()...), 1, usage); err != nil {
		return err
	}
	addr, err := normAddress(append(addrArg, fs.Args()...)[0])
	if err != nil {
		return err
	}
	cfg, err := e.config()
	if err != nil {
		return err
	}
	def := store.SendingLimits{HourMessages: cfg.Sending.HourMessages, HourRecipients: cfg.Sending.HourRecipients,
		DayMessages: cfg.Sending.DayMessages, DayRecipients: cfg.Sending.DayRecipients}
	return e.withStore(func(st store.Store) error {
		acct, err := st.AccountByAddress(e.Ctx, addr)
		if err != nil {
			return noAccount(addr, err)
		}
		own, err := st.SendingOverride(e.Ctx, acct.ID)
		if err != nil {
			return err
		}
		changed := false
		for _, f := range []struct {
			v   limitValue
			dst *int
		}{
			{o.hourMessages, &own.HourMessages}, {o.hourRecipients, &own.HourRecipients},
			{o.dayMessages, &own.DayMessages}, {o.dayRecipients, &own.DayRecipients},
		} {
			if f.v.set {
				*f.dst, changed = f.v.v, true
			}
		}
		if changed {
			if err := st.SetSendingOverride(e.Ctx, acct.ID, own); err != nil {
				return err
			}
		}
		usage, err := st.SendingUsage(e.Ctx, acct.ID, time.Now())
		if err != nil {
			return err
		}
		printLimits(e, addr, own, def, usage)
		return nil
	})
}

// printLimits writes one line per limit: its value and where it comes from, the usage and
// the reset.
func printLimits(e *Env, addr string, own, def store.SendingLimits, u store.SendingUsage) {
	fmt.Fprintf(e.Stdout, "sending limits of %s (0: no limit)\n", addr)
	w := tabwriter.NewWriter(e.Stdout, 0, 0, 2, ' ', 0)
	hourEnd := u.HourStart.Add(time.Hour).Format("2006-01-02 15:04 MST")
	dayEnd := u.DayStart.AddDate(0, 0, 1).Format("2006-01-02 15:04 MST")
	fmt.Fprintln(w, "limit\tvalue\tset by\tused\tresets")
	for _, l := range []struct {
		name          string
		own, def, use int
		reset         string
	}{
		{"hour-messages", own.HourMessages, def.HourMessages, u.HourMessages, hourEnd},
		{"hour-recipients", own.HourRecipients, def.HourRecipients, u.HourRecipients, hourEnd},
		{"day-messages", own.DayMessages, def.DayMessages, u.DayMessages, dayEnd},
		{"day-recipients", own.DayRecipients, def.DayRecipients, u.DayRecipients, dayEnd},
	} {
		value, by := l.own, "account"
		if l.own == store.Inherit {
			value, by = l.def, "default"
		}
		fmt.Fprintf(w, "%s\t%d\t%s\t%d\t%s\n", l.name, value, by, l.use, l.reset)
	}
	w.Flush()
}
