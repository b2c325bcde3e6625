package cli

import (
	"fmt"
	"strconv"

	"github.com/dustin/go-humanize"

	"petrel/internal/store"
)

const quotaUsage = "account quota ADDRESS [SIZE|none|default [COUNT|none|default]]"

// accountQuota shows or sets an account's quota (RFC 9208): SIZE is the storage limit
// ("500MiB", "2GB", a number of bytes), COUNT the message limit; "none" is no limit and
// "default" follows the config's [quota]. With only the address it shows quota and usage.
func accountQuota(e *Env, args []string) error {
	if len(args) < 1 || len(args) > 3 {
		return fmt.Errorf("%w: petrel %s", ErrUsage, quotaUsage)
	}
	addr, err := normAddress(args[0])
	if err != nil {
		return err
	}
	limit := func(s string, size bool) (int64, error) {
		switch s {
		case "none":
			return 0, nil
		case "default":
			return store.QuotaDefault, nil
		}
		var v uint64
		var err error
		if size {
			v, err = humanize.ParseBytes(s)
		} else {
			v, err = strconv.ParseUint(s, 10, 63)
		}
		if err != nil || v == 0 || v > 1<<62 {
			return 0, fmt.Errorf("%q is not a limit (a size such as 500MiB or 2GB, a count, none or default)\n%w: petrel %s", s, ErrUsage, quotaUsage)
		}
		return int64(v), nil
	}
	return e.withStore(func(st store.Store) error {
		a, err := st.AccountByAddress(e.Ctx, addr)
		if err != nil {
			return noAccount(addr, err)
		}
		q, err := st.Quota(e.Ctx, a.ID)
		if err != nil {
			return err
		}
		if len(args) > 1 {
			set := q.Setting
			if set.Storage, err = limit(args[1], true); err != nil {
				return err
			}
			if len(args) > 2 {
				if set.Messages, err = limit(args[2], false); err != nil {
					return err
				}
			}
			if err := st.SetQuota(e.Ctx, a.ID, set); err != nil {
				return err
			}
			if q, err = st.Quota(e.Ctx, a.ID); err != nil {
				return err
			}
		}
		show := func(limit, setting int64, format func(int64) string) string {
			s := "none"
			if limit > 0 {
				s = format(limit)
			}
			if setting == store.QuotaDefault {
				s += " (default)"
			}
			return s
		}
		bytes := func(v int64) string { return humanize.IBytes(uint64(v)) }
		count := func(v int64) string { return strconv.FormatInt(v, 10) }
		fmt.Fprintf(e.Stdout, "%s\tstorage %s of %s\tmessages %d of %s\n", addr,
			bytes(q.Usage.Size), show(q.Limits.Storage, q.Setting.Storage, bytes),
			q.Usage.Messages, show(q.Limits.Messages, q.Setting.Messages, count))
		return nil
	})
}
