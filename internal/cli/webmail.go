package cli

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"petrel/internal/store"
)

func webmailCommands() []command {
	return []command{
		{noun: "webmail", verb: "sessions", help: "list the webmail's logged-in browsers",
			more: "Each line is a session's id, its account, the address it logged in from, when, and its last use (to the minute). `petrel webmail revoke` ends sessions.",
			run:  webmailSessions},
		{noun: "webmail", verb: "revoke", args: "ID|ADDRESS|--all", help: "end webmail sessions: one (by id), an account's, or all",
			more: "The browser is logged out at its next request, and its live updates stop within 25 seconds.",
			run:  webmailRevoke},
	}
}

// webSessions is the store's record of the webmail's sessions, or an error saying there
// is none.
func webSessions(st store.Store) (store.WebSessions, error) {
	ws, ok := st.(store.WebSessions)
	if !ok {
		return nil, errors.New("this store keeps no webmail sessions (they live in the server's memory)")
	}
	return ws, nil
}

func webmailSessions(e *Env, args []string) error {
	if err := exactArgs(args, 0, "webmail sessions"); err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		ws, err := webSessions(st)
		if err != nil {
			return err
		}
		list, err := ws.ListWebSessions(e.Ctx)
		if err != nil {
			return err
		}
		if len(list) == 0 {
			fmt.Fprintln(e.Stdout, "no webmail sessions")
			return nil
		}
		tw := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tACCOUNT\tFROM\tLOGGED IN\tLAST USE")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.ID, s.Address, s.Remote,
				s.Created.UTC().Format(time.DateTime), s.Seen.UTC().Format(time.DateTime))
		}
		return tw.Flush()
	})
}

func webmailRevoke(e *Env, args []string) error {
	if err := exactArgs(args, 1, "webmail revoke ID|ADDRESS|--all"); err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		ws, err := webSessions(st)
		if err != nil {
			return err
		}
		var n int
		switch arg := args[0]; {
		case arg == "--all":
			n, err = ws.RevokeWebSessions(e.Ctx, 0, "")
		case strings.Contains(arg, "@"):
			addr, aerr := normAddress(arg)
			if aerr != nil {
				return aerr
			}
			a, aerr := st.AccountByAddress(e.Ctx, addr)
			if aerr != nil {
				return noAccount(addr, aerr)
			}
			n, err = ws.RevokeWebSessions(e.Ctx, a.ID, "")
		default:
			if n, err = ws.RevokeWebSessions(e.Ctx, 0, arg); err == nil && n == 0 {
				return fmt.Errorf("there is no webmail session %s (`petrel webmail sessions` lists them)", arg)
			}
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.Stdout, "revoked %d webmail session(s)\n", n)
		return nil
	})
}
