package cli

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"

	"petrel/internal/app"
	"petrel/internal/config"
	"petrel/internal/store"
)

// TestQueueCommands drives every queue command against a store with queued entries.
func TestQueueCommands(t *testing.T) {
	data := t.TempDir()
	st, err := app.OpenStore(data, config.Quota{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, rcpt := range []string{"x@remote.test", "y@other.test"} {
		body := "Subject: queued for " + rcpt + "\r\n\r\nbody\r\n"
		id, err := st.Enqueue(context.Background(), &store.Outbound{MailFrom: "alice@example.test", Ret: "HDRS",
			Recipients: []store.OutboundRecipient{{Address: rcpt, Domain: strings.SplitN(rcpt, "@", 2)[1], Notify: "FAILURE"}},
			Body:       strings.NewReader(body), Size: int64(len(body))})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, strconv.FormatInt(id, 10))
	}
	st.Close()

	out, err := run(t, data, "", "queue", "list")
	if err != nil || !strings.Contains(out, "x@remote.test") || !strings.Contains(out, "y@other.test") || !strings.Contains(out, "<alice@example.test>") {
		t.Fatalf("queue list: %v\n%s", err, out)
	}
	out, err = run(t, data, "", "queue", "show", ids[0])
	if err != nil || !strings.Contains(out, "Subject: queued for x@remote.test") || !strings.Contains(out, "RET=HDRS") ||
		!strings.Contains(out, "NOTIFY=FAILURE") || strings.Contains(out, "body") {
		t.Errorf("queue show: %v\n%s", err, out)
	}
	for _, step := range []struct {
		args []string
		want string
	}{
		{[]string{"hold", ids[0]}, "held"},
		{[]string{"list"}, "(held)"},
		{[]string{"release", ids[0]}, "released"},
		{[]string{"retry", "all"}, "due now"},
		{[]string{"retry", ids[1]}, "due now"},
		{[]string{"bounce", ids[1]}, "will be bounced"},
		{[]string{"list"}, "bouncing"},
		{[]string{"delete", ids[0]}, "deleted"},
	} {
		out, err := run(t, data, "", append([]string{"queue"}, step.args...)...)
		if err != nil || !strings.Contains(out, step.want) {
			t.Errorf("queue %v: %v\n%s", step.args, err, out)
		}
	}
	for _, args := range [][]string{{"show", ids[0]}, {"hold", "x"}, {"retry", "0"}, {"bounce", "all"}, {"show"}} {
		if out, err := run(t, data, "", append([]string{"queue"}, args...)...); err == nil {
			t.Errorf("queue %v succeeded:\n%s", args, out)
		}
	}
	if out, _ := run(t, data, "", "queue", "list"); strings.Contains(out, "x@remote.test") {
		t.Errorf("deleted entry listed:\n%s", out)
	}
}
