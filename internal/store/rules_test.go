package store

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestMailboxNames(t *testing.T) {
	for _, tc := range []struct{ in, lookup string }{
		{"", Inbox}, {"inbox", Inbox}, {"InBoX", Inbox}, {"inbox/x", "INBOX/x"}, {"Inbox/a/b", "INBOX/a/b"},
		{"Inbox2", "Inbox2"}, {"Work", "Work"}, {"work/inbox", "work/inbox"},
	} {
		if got := LookupMailboxName(tc.in); got != tc.lookup {
			t.Errorf("LookupMailboxName(%q) = %q, want %q", tc.in, got, tc.lookup)
		}
	}
	if got, err := CanonicalMailboxName("inbox/Sub"); err != nil || got != "INBOX/Sub" {
		t.Errorf(`CanonicalMailboxName("inbox/Sub") = %q, %v`, got, err)
	}
	for _, bad := range []string{"", "a/", "/a", "a//b", "..", "a/./b", "#x", "a%", "a*b", "a\rb"} {
		if _, err := CanonicalMailboxName(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CanonicalMailboxName(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if got := Superiors("a/b/c"); !slices.Equal(got, []string{"a", "a/b"}) {
		t.Errorf("Superiors = %q", got)
	}
	if len(Superiors("a")) != 0 || !IsInferior("a/b", "a") || IsInferior("ab", "a") || IsInferior("a", "a") || IsInferior("a/", "a") {
		t.Error("Superiors or IsInferior wrong at the edges")
	}
}

func TestFlags(t *testing.T) {
	got, err := NormalizeFlags([]string{"work", `\SEEN`, "Work", `\seen`, "$Label"})
	if err != nil || !slices.Equal(got, []string{"$Label", `\Seen`, "work"}) {
		t.Errorf("NormalizeFlags = %q, %v", got, err)
	}
	for _, bad := range []string{`\Recent`, `\X`, "a b", "a(", `a"`, "a]", ""} {
		if _, err := NormalizeFlags([]string{bad}); !errors.Is(err, ErrInvalid) {
			t.Errorf("NormalizeFlags(%q): %v", bad, err)
		}
	}
	cur := []string{"Work", `\Seen`}
	for _, tc := range []struct {
		mode  FlagMode
		flags []string
		want  []string
	}{
		{FlagsAdd, []string{"work", `\Flagged`}, []string{"Work", `\Flagged`, `\Seen`}},
		{FlagsRemove, []string{"WORK"}, []string{`\Seen`}},
		{FlagsReplace, []string{"work"}, []string{"Work"}},
		{FlagsReplace, nil, []string{}},
	} {
		if got := ApplyFlags(cur, tc.mode, tc.flags); !slices.Equal(got, tc.want) {
			t.Errorf("ApplyFlags(%q, %d, %q) = %q, want %q", cur, tc.mode, tc.flags, got, tc.want)
		}
	}
	if !slices.Equal(cur, []string{"Work", `\Seen`}) {
		t.Errorf("ApplyFlags changed its input: %q", cur)
	}
}

func TestMergeUIDRanges(t *testing.T) {
	got := MergeUIDRanges([]UIDRange{{9, 9}, {5, 2}, {3, 6}, {7, 7}, {10, math.MaxUint32}, {math.MaxUint32, math.MaxUint32}})
	want := []UIDRange{{2, 7}, {9, math.MaxUint32}}
	if !slices.Equal(got, want) {
		t.Errorf("MergeUIDRanges = %v, want %v", got, want)
	}
	if got := MergeUIDRanges(nil); len(got) != 0 {
		t.Errorf("MergeUIDRanges(nil) = %v", got)
	}
}
