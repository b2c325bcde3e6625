package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"petrel/internal/mailtest"
	"petrel/internal/mailtest/dialog"
)

// TestStoreCopyKilled kills `petrel store copy --to postgres://...` with SIGKILL part way
// and runs it again: the second run resumes after the last batch the first committed and
// ends with a copy that holds the same rows as the source (the command compares them).
// The kill happens at a known point without timing: the test holds a lock on the messages
// table, so the copy writes the tables before it and then waits there.
func TestStoreCopyKilled(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	in := startInstance(t, nil)
	in.addAccount("alice@example.test", "password-alice")
	for i := range 5 {
		mustDeliver(t, in, []string{"alice@example.test"}, testMessage(fmt.Sprintf("copy-%d", i), "sender@remote.example", "alice@example.test"))
	}
	in.signal(syscall.SIGTERM)
	in.wait(60 * time.Second)

	dsn := mailtest.PostgresDSN(t)
	pgNode := newInstance(t, options{"store": {`backend = "postgres"`, fmt.Sprintf("dsn = %q", dsn)}})
	pgNode.mustPetrel("", "migrate")
	locker, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer locker.Close(ctx)
	lock, err := locker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.Exec(ctx, `LOCK TABLE messages IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	watcher, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watcher.Close(ctx)

	cmd := exec.Command(petrelBin, append(in.args(), "store", "copy", "--to", dsn)...)
	out := &dialog.Log{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Wait for the state of the batch before messages: the bodies.
	var state string
	deadline := time.Now().Add(2 * time.Minute)
	for !strings.Contains(state, `"table":"blobs"`) {
		select {
		case err := <-exited:
			t.Fatalf("store copy ended before the kill: %v\n%s", err, out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("store copy did not reach the messages; state %q\n%s", state, out)
		}
		watcher.QueryRow(ctx, `SELECT coalesce((SELECT convert_from(state, 'UTF8') FROM copy_state), '')`).Scan(&state)
	}
	cmd.Process.Kill() // by its PID: the process this test started
	<-exited
	lock.Rollback(ctx)
	if !strings.Contains(out.String(), "copying: ") || !strings.Contains(out.String(), "blobs") {
		t.Errorf("the killed copy did not say how far it got: %q", out)
	}
	var messages int
	if err := watcher.QueryRow(ctx, `SELECT count(*) FROM messages`).Scan(&messages); err != nil || messages != 0 {
		t.Fatalf("messages in the destination after the kill: %d, %v; want none", messages, err)
	}

	res := in.mustPetrel("", "store", "copy", "--to", dsn)
	if !strings.Contains(res, "resuming an interrupted copy") || !strings.Contains(res, "same rows as the source") ||
		!strings.Contains(res, "messages 5") {
		t.Fatalf("store copy after the kill: %q", res)
	}
	if res, err := in.petrel("", "store", "copy", "--to", dsn); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("a third copy into the finished one: %q, %v; want a refusal", res, err)
	}
}
