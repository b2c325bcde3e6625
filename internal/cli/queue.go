package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"petrel/internal/store"
)

// The queue commands work on the live store the way every management command does: they
// open the same SQLite database as the running server (WAL: readers never wait, writers take
// turns), and change rows, not the server's memory. The server's queue looks at the store at
// least every few seconds, so a retry, release or bounce takes effect within seconds without
// a signal or a socket; a hold is seen at the next claim. An entry deleted while an attempt
// runs stays deleted: the attempt's record finds nothing to update.

func queueCommands() []command {
	return []command{
		{noun: "queue", verb: "list", help: "list the outbound queue: entries, recipients, next attempt, last error", run: queueList},
		{noun: "queue", verb: "show", args: "ID", help: "show one queued message with its recipients and headers", run: queueShow},
		{noun: "queue", verb: "retry", args: "ID|all", help: "make an entry (or every entry) due now", run: queueRetry},
		{noun: "queue", verb: "hold", args: "ID", help: "stop delivery attempts for an entry", run: queueHold},
		{noun: "queue", verb: "release", args: "ID", help: "resume delivery attempts for a held entry", run: queueRelease},
		{noun: "queue", verb: "delete", args: "ID", help: "remove an entry without telling its sender", run: queueDelete},
		{noun: "queue", verb: "bounce", args: "ID", help: "give up on an entry: its sender gets a DSN", run: queueBounce},
	}
}

func queueList(e *Env, args []string) error {
	if err := exactArgs(args, 0, "queue list"); err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		es, err := st.Entries(e.Ctx)
		if err != nil {
			return err
		}
		if len(es) == 0 {
			fmt.Fprintln(e.Stdout, "queue is empty")
			return nil
		}
		w := tabwriter.NewWriter(e.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tQUEUED\tSIZE\tFROM\tRECIPIENT\tATTEMPTS\tNEXT\tLAST ERROR")
		for _, en := range es {
			from := "<" + en.MailFrom + ">"
			if en.Held {
				from += " (held)"
			}
			for i, r := range en.Recipients {
				id, queued, size, f := strconv.FormatInt(en.ID, 10), en.Created.UTC().Format(time.DateTime), strconv.FormatInt(en.Size, 10), from
				if i > 0 {
					id, queued, size, f = "", "", "", ""
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", id, queued, size, f, r.Address, r.Attempts, next(r), oneLine(r.LastError, 60))
			}
		}
		return w.Flush()
	})
}

// next describes when a recipient is tried next.
func next(r store.QueueRecipient) string {
	switch {
	case r.Bounce:
		return "bouncing"
	case r.LeaseUntil.After(time.Now()):
		return "now (in progress)"
	case !r.NextAttempt.After(time.Now()):
		return "due"
	}
	return r.NextAttempt.UTC().Format(time.DateTime)
}

func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n-3] + "..."
	}
	return s
}

func queueShow(e *Env, args []string) error {
	if err := exactArgs(args, 1, "queue show ID"); err != nil {
		return err
	}
	id, err := queueID(args[0], false)
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		en, err := st.Entry(e.Ctx, id)
		if err != nil {
			return queueErr(id, err)
		}
		fmt.Fprintf(e.Stdout, "entry:     %d%s\n", en.ID, map[bool]string{true: " (held)"}[en.Held])
		fmt.Fprintf(e.Stdout, "queued:    %s\n", en.Created.UTC().Format(time.RFC3339))
		fmt.Fprintf(e.Stdout, "from:      <%s>\n", en.MailFrom)
		if en.Ret != "" || en.EnvID != "" {
			fmt.Fprintf(e.Stdout, "dsn:       RET=%s ENVID=%s\n", en.Ret, en.EnvID)
		}
		fmt.Fprintf(e.Stdout, "size:      %d bytes\n", en.Size)
		for _, r := range en.Recipients {
			fmt.Fprintf(e.Stdout, "recipient: <%s> attempts %d, next %s", r.Address, r.Attempts, next(r))
			if r.Notify != "" {
				fmt.Fprintf(e.Stdout, ", NOTIFY=%s", r.Notify)
			}
			fmt.Fprintln(e.Stdout)
			if r.LastError != "" {
				fmt.Fprintf(e.Stdout, "           last error: %s\n", r.LastError)
			}
		}
		// The header section, for the operator to see what it is; never the body.
		rc, err := st.OpenBlob(e.Ctx, en.BlobID)
		if err != nil {
			return err
		}
		defer rc.Close()
		fmt.Fprintln(e.Stdout)
		return copyHeader(e.Stdout, rc)
	})
}

// copyHeader copies the header section of a message (up to the empty line, at most 64 KiB).
func copyHeader(w io.Writer, r io.Reader) error {
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		return err
	}
	if i := strings.Index(string(b), "\r\n\r\n"); i >= 0 {
		b = b[:i+2]
	}
	_, err = io.WriteString(w, strings.ReplaceAll(string(b), "\r\n", "\n"))
	return err
}

func queueRetry(e *Env, args []string) error {
	if err := exactArgs(args, 1, "queue retry ID|all"); err != nil {
		return err
	}
	id, err := queueID(args[0], true)
	if err != nil {
		return err
	}
	return e.withStore(func(st store.Store) error {
		if err := st.Retry(e.Ctx, id, time.Now()); err != nil {
			return queueErr(id, err)
		}
		if id == 0 {
			fmt.Fprintln(e.Stdout, "every queued message is due now")
		} else {
			fmt.Fprintf(e.Stdout, "entry %d is due now\n", id)
		}
		return nil
	})
}

// queueOne is a command on one entry.
func queueOne(usage, done string, f func(e *Env, st store.Store, id int64) error) func(*Env, []string) error {
	return func(e *Env, args []string) error {
		if err := exactArgs(args, 1, usage); err != nil {
			return err
		}
		id, err := queueID(args[0], false)
		if err != nil {
			return err
		}
		return e.withStore(func(st store.Store) error {
			if err := f(e, st, id); err != nil {
				return queueErr(id, err)
			}
			fmt.Fprintf(e.Stdout, "entry %d %s\n", id, done)
			return nil
		})
	}
}

var (
	queueHold = queueOne("queue hold ID", "held", func(e *Env, st store.Store, id int64) error {
		return st.Hold(e.Ctx, id, true)
	})
	queueRelease = queueOne("queue release ID", "released", func(e *Env, st store.Store, id int64) error {
		return st.Hold(e.Ctx, id, false)
	})
	queueDelete = queueOne("queue delete ID", "deleted", func(e *Env, st store.Store, id int64) error {
		return st.Delete(e.Ctx, id)
	})
	queueBounce = queueOne("queue bounce ID", "will be bounced by the running server", func(e *Env, st store.Store, id int64) error {
		if en, err := st.Entry(e.Ctx, id); err == nil && en.Held {
			// A held entry is never claimed, so its bounce would wait for a release.
			if err := st.Hold(e.Ctx, id, false); err != nil {
				return err
			}
		}
		return st.Bounce(e.Ctx, id, time.Now())
	})
)

// queueID parses an entry ID; "all" is 0 where allowed.
func queueID(s string, all bool) (int64, error) {
	if all && s == "all" {
		return 0, nil
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("%q is not a queue entry ID (see `petrel queue list`)", s)
	}
	return id, nil
}

func queueErr(id int64, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no queue entry %d (delivered, bounced or deleted meanwhile?)", id)
	}
	return err
}
