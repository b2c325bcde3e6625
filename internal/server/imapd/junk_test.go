package imapd

import (
	"context"
	"strings"
	"sync"
	"testing"

	"petrel/internal/mailtest/dialog"
)

// lesson is one call of the junk trainer.
type lesson struct {
	blobs int
	junk  bool
}

type recordTrainer struct {
	mu      sync.Mutex
	lessons []lesson
}

func (r *recordTrainer) TrainJunk(_ context.Context, _ int64, blobIDs []int64, junk bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lessons = append(r.lessons, lesson{len(blobIDs), junk})
	return nil
}

func (r *recordTrainer) take() []lesson {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.lessons
	r.lessons = nil
	return l
}

// command sends a tagged command and reads to its tagged reply, which must be OK.
func command(t *testing.T, d *dialog.Dialog, tag, cmd string) {
	t.Helper()
	d.Send(tag + " " + cmd)
	for {
		l := d.Line()
		if strings.HasPrefix(l, tag+" ") {
			if !strings.HasPrefix(l, tag+" OK") {
				t.Fatalf("%s: %q", cmd, l)
			}
			return
		}
	}
}

// TestJunkTraining: what each way of filing a message teaches the trainer.
func TestJunkTraining(t *testing.T) {
	tr := &recordTrainer{}
	e := newEnv(t, Config{Junk: tr})
	for range 4 {
		e.deliver(t, "INBOX", msgA)
	}
	e.deliver(t, "Junk", msgA)
	d := e.login(t)
	steps := []struct {
		cmd  string
		want []lesson
	}{
		{"SELECT INBOX", nil},
		{"UID MOVE 1 Junk", []lesson{{1, true}}},
		{"COPY 1 Junk", []lesson{{1, true}}},
		{"MOVE 1 Archive", nil},                         // neither side is Junk
		{"STORE 1 +FLAGS ($Junk)", []lesson{{1, true}}}, // Thunderbird's mark
		{"UID STORE 3 +FLAGS.SILENT ($NotJunk)", []lesson{{1, false}}},
		{"STORE 1 -FLAGS ($Junk)", nil},          // taking a mark away teaches nothing
		{"STORE 1 +FLAGS ($Junk $NotJunk)", nil}, // contradicts itself
		{"STORE 1 +FLAGS (\\Seen)", nil},
		{"SELECT Junk", nil},
		{"MOVE 1 INBOX", []lesson{{1, false}}}, // out of Junk
		{"MOVE 1 Trash", nil},                  // deleting junk says nothing new
		{"COPY 1:* Archive", []lesson{{1, false}}},
		{"COPY 1 Junk", nil}, // Junk to Junk
	}
	for i, s := range steps {
		command(t, d, "t"+string(rune('a'+i)), s.cmd)
		got := tr.take()
		if len(got) != len(s.want) || len(got) > 0 && got[0] != s.want[0] {
			t.Errorf("%s taught %v, want %v", s.cmd, got, s.want)
		}
	}
}
