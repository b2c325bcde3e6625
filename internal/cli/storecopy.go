package cli

import (
	"flag"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"petrel/internal/app"
	"petrel/internal/store"
)

func storeCommands() []command {
	return []command{
		{noun: "store", verb: "copy", args: "--to LOCATION | --from LOCATION", flags: storeCopyFlags, run: storeCopy,
			help: "copy the whole store into, or from, another backend",
			more: `LOCATION is a PostgreSQL connection string (postgres://... or libpq key=value words; the
password from PGPASSWORD or ~/.pgpass) or a data directory holding an embedded store.
--to copies the store of the config ([store], --data) into LOCATION; --from copies LOCATION
into it. The destination must be empty. Everything goes over as it is: accounts, domains,
aliases, mailboxes with their UIDVALIDITY, UIDs, MODSEQs and tombstones, flags, bodies,
Sieve scripts, junk counts, the outbound queue, limits and counters; so IMAP and POP3
clients see no change. The copy reads one snapshot of the source; afterwards it is compared
with the source row by row, and the destination's search index is rebuilt. Stop the server
first: mail arriving during the copy is not in it (the comparison then reports the
difference). The copy says how far it is as it goes ("domains, accounts done, messages
41000/100000"). It is resumable: each batch it writes records in the destination how far
it got, so a copy interrupted at any point (even kill -9) goes on from there when run again
with the same source, writing no row twice. A destination holding other data, or part of a
copy from another source, is refused.`},
	}
}

func storeCopyFlags() *flag.FlagSet {
	fs := flag.NewFlagSet("store copy", flag.ContinueOnError)
	fs.String("to", "", "copy the configured store into this location")
	fs.String("from", "", "copy this location into the configured store")
	return fs
}

func storeCopy(e *Env, args []string) error {
	const usage = "store copy --to LOCATION | --from LOCATION"
	fset := storeCopyFlags()
	if err := parseFlags(fset, args, 0, usage); err != nil {
		return err
	}
	to, from := fset.Lookup("to").Value.String(), fset.Lookup("from").Value.String()
	if (to == "") == (from == "") {
		return fmt.Errorf("%w: petrel %s", ErrUsage, usage)
	}
	c, err := e.config()
	if err != nil {
		return err
	}
	loc := to + from
	last, lastAt := "", time.Time{}
	res, err := app.CopyStore(e.Ctx, c, loc, to != "", app.CopyOptions{Progress: func(p store.CopyProgress) {
		switch {
		case p.Resumed && last == "":
			fmt.Fprintf(e.Stdout, "resuming an interrupted copy: %d rows already there (%s)\n", p.ResumedRows, p)
		case p.Table == last && time.Since(lastAt) < 2*time.Second:
			return
		default:
			fmt.Fprintf(e.Stdout, "copying: %s\n", p)
		}
		last, lastAt = p.Table, time.Now()
	}, AfterBatch: e.copyAfterBatch})
	if err != nil {
		return err
	}
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(res.Rows)) {
		parts = append(parts, fmt.Sprintf("%s %d", t, res.Rows[t]))
	}
	fmt.Fprintf(e.Stdout, "copied: %s\nthe copy holds the same rows as the source; %d bodies indexed for search; %d DKIM keys copied\n",
		strings.Join(parts, ", "), res.Indexed, res.DKIMKeys)
	return nil
}
