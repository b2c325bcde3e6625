package store

import (
	"encoding/json"
	"testing"
)

// TestCopyResumePoint: the key of a copy's last row survives its JSON state (text that is
// not UTF-8 included) and orders rows as the export does.
func TestCopyResumePoint(t *testing.T) {
	for _, tc := range []struct {
		table       string
		last        []any
		before, aft []any // rows of the same table on either side
	}{
		{"messages", []any{int64(41000)}, []any{int64(40999)}, []any{int64(41001)}},
		{"greylist", []any{"192.0.2.0/24 a@b \xff"}, []any{"192.0.2.0/24 a@b \xfe"}, []any{"192.0.2.0/24 a@b \xff!"}},
		{"expunged", []any{int64(3), int64(10)}, []any{int64(3), int64(9)}, []any{int64(4), int64(1)}},
		{"junk_trained", []any{int64(1), []byte{0x80, 1}}, []any{int64(1), []byte{0x80}}, []any{int64(1), []byte{0x80, 2}}},
	} {
		tab, _ := CopyTableNamed(tc.table)
		row := append(append([]any(nil), tc.last...), make([]any, len(tab.Columns)-len(tc.last))...)
		key, err := stateKey(tab, row)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(copyState{Table: tc.table, Key: key})
		var st copyState
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		p, err := st.point()
		if err != nil {
			t.Fatalf("%s: %v", tc.table, err)
		}
		ti := p.table
		if p.after(ti, tc.last) || p.after(ti, tc.before) || !p.after(ti, tc.aft) {
			t.Errorf("%s: after(last, before, after) = %v %v %v, want false false true", tc.table,
				p.after(ti, tc.last), p.after(ti, tc.before), p.after(ti, tc.aft))
		}
		if !p.after(ti+1, []any{int64(0)}) || p.after(ti-1, []any{int64(1 << 40)}) {
			t.Errorf("%s: the tables before are done and the ones after are not", tc.table)
		}
	}
}
