package main

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{5}, 5},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{10, 10, 1000}, 10}, // one outlier round does not move it
	} {
		in := append([]float64(nil), tc.in...)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Errorf("median reordered its input: %v", tc.in)
			}
		}
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median(nil) is not NaN")
	}
}

func TestParseRunName(t *testing.T) {
	for _, tc := range []struct {
		name, round, target, scenario string
		ok                            bool
	}{
		{"r1-petrel-smtp-in-c8.json", "1", "petrel", "smtp-in-c8", true},
		{"r12-anchor-pop3-retr.json", "12", "anchor", "pop3-retr", true},
		{"r1-petrel.json", "", "", "", false},
		{"r1-petrel-x.txt", "", "", "", false},
		{"x1-petrel-x.json", "", "", "", false},
		{"r-petrel-x.json", "", "", "", false},
	} {
		r, tg, sc, ok := parseRunName(tc.name)
		if r != tc.round || tg != tc.target || sc != tc.scenario || ok != tc.ok {
			t.Errorf("parseRunName(%q) = %q %q %q %v", tc.name, r, tg, sc, ok)
		}
	}
}

func TestGoal(t *testing.T) {
	for _, tc := range []struct {
		spec  string
		ratio float64
		met   bool
		text  string
	}{
		{">=3", 3, true, "≥ 3×"},
		{">=3", 2.99, false, "≥ 3×"},
		{"<=0.1", 0.05, true, "≤ 0.1×"},
		{"<= 0.1", 0.2, false, "≤ 0.1×"},
		{"", 123, true, ""},
	} {
		g, err := parseGoal(tc.spec)
		if err != nil {
			t.Fatalf("parseGoal(%q): %v", tc.spec, err)
		}
		if g.met(tc.ratio) != tc.met || g.String() != tc.text {
			t.Errorf("goal %q: met(%v) = %v, text %q", tc.spec, tc.ratio, g.met(tc.ratio), g.String())
		}
	}
	for _, bad := range []string{"3", ">3", ">=x", ">=0", "==1"} {
		if _, err := parseGoal(bad); err == nil {
			t.Errorf("parseGoal(%q) accepted", bad)
		}
	}
}

func TestLookup(t *testing.T) {
	var v map[string]any
	json.Unmarshal([]byte(`{"ops_per_sec": 12.5, "delivery": {"per_sec": 7}, "idle": null, "s": "x"}`), &v)
	for _, tc := range []struct {
		path string
		want float64
		ok   bool
	}{
		{"ops_per_sec", 12.5, true},
		{"delivery.per_sec", 7, true},
		{"delivery.missing", 0, false},
		{"idle.pss_kb_per_conn", 0, false},
		{"s", 0, false},
		{"ops_per_sec.x", 0, false},
	} {
		got, ok := lookup(v, tc.path)
		if got != tc.want || ok != tc.ok {
			t.Errorf("lookup(%q) = %v, %v", tc.path, got, ok)
		}
	}
}

const testManifest = "info\tcpu\tTest CPU\n" +
	"info\trounds\t3\n" +
	"target\tpetrel\tPetrel\n" +
	"target\tanchor\tPostfix+Dovecot\n" +
	"scenario\tsmtp\tInbound SMTP\tsmtp pop3\n" +
	"metric\tsmtp\tops_per_sec\taccepted/s\thigher\n" +
	"metric\tsmtp\tdelivery.per_sec\tdelivered/s\thigher\t>=10\n" +
	"scenario\tidle\tIdle\tpop3\n" +
	"metric\tidle\tidle.pss_kb_per_conn\tKB/conn\tlower\t<=0.1\n" +
	"scenario\timap\tIMAP FETCH\timap\n" +
	"metric\timap\tops_per_sec\tfetched/s\thigher\n" +
	"scenario\tskipped\tNot selected\tsmtp\n" +
	"metric\tskipped\tops_per_sec\tx/s\thigher\n" +
	"na\timap\tpetrel\tno imap\n" +
	"na\timap\tanchor\tno load scenario yet\n" +
	"cpu\tsmtp\tpetrel\t1\t90\n" +
	"cpu\tsmtp\tpetrel\t2\t70\n" +
	"cpu\tsmtp\tpetrel\t3\t80\n"

// writeRuns writes result files named as compare.sh names them.
func writeRuns(t *testing.T, runs map[string]string) string {
	dir := t.TempDir()
	for name, body := range runs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestBuild(t *testing.T) {
	m, err := readManifest(strings.NewReader(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeRuns(t, map[string]string{
		"r1-petrel-smtp.json": `{"ops_per_sec": 1000, "delivery": {"per_sec": 900}, "errors": 0}`,
		"r2-petrel-smtp.json": `{"ops_per_sec": 1200, "delivery": {"per_sec": 1100}, "errors": 0}`,
		"r3-petrel-smtp.json": `{"ops_per_sec": 1100, "delivery": {"per_sec": 1000}, "errors": 2, "first_errors": ["message 7: 451 try later"]}`,
		"r1-anchor-smtp.json": `{"ops_per_sec": 500, "delivery": {"per_sec": 100}, "errors": 0}`,
		"r2-anchor-smtp.json": `{"ops_per_sec": 300, "delivery": {"per_sec": 80}, "errors": 0}`,
		"r3-anchor-smtp.json": `{"ops_per_sec": 400, "delivery": {"per_sec": 120}, "errors": 0}`,
		"r1-petrel-idle.json": `{"idle": {"pss_kb_per_conn": 4}}`,
		"r1-anchor-idle.json": `{"idle": {"pss_kb_per_conn": 50}}`,
		"r2-anchor-idle.json": ``, // petrel-load died before printing
		"notes.txt":           `ignored`,
	})
	runs, bad, err := readRuns(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || !strings.Contains(bad[0], "r2-anchor-idle.json") {
		t.Errorf("bad results %q", bad)
	}
	tb := build(m, runs, bad)

	if len(tb.Rows) != 4 { // smtp ×2, idle, imap; "skipped" has neither results nor n/a
		t.Fatalf("%d rows: %+v", len(tb.Rows), tb.Rows)
	}
	acc, del, idle, imap := tb.Rows[0], tb.Rows[1], tb.Rows[2], tb.Rows[3]
	if c := acc.Cells["petrel"]; c.Median != 1100 || c.Min != 1000 || c.Max != 1200 || c.Errors != 2 ||
		len(c.Runs) != 3 || c.Runs[0] != 1000 || c.Runs[2] != 1100 {
		t.Errorf("petrel accepted cell %+v", c)
	}
	if acc.Ratio == nil || *acc.Ratio != 1100.0/400 || acc.GoalMet != nil {
		t.Errorf("accepted ratio %v, goal %v", acc.Ratio, acc.GoalMet)
	}
	if del.Ratio == nil || *del.Ratio != 10 || del.GoalMet == nil || !*del.GoalMet {
		t.Errorf("delivered ratio %v met %v (want 1000/100 = 10, met)", del.Ratio, del.GoalMet)
	}
	if idle.Ratio == nil || *idle.Ratio != 0.08 || !*idle.GoalMet || idle.Better != "lower" {
		t.Errorf("idle row %+v ratio %v", idle, *idle.Ratio)
	}
	if imap.Ratio != nil || imap.Cells["petrel"].NA != "no imap" || imap.Cells["anchor"].NA == "" {
		t.Errorf("imap row %+v", imap)
	}
	if got := tb.CPUBusy["smtp"]["petrel"]; got != 80 {
		t.Errorf("cpu busy %v, want the median 80", got)
	}
	if len(tb.Problems) != 2 || !strings.Contains(tb.Problems[1], "smtp on petrel, round 3: 2 errors: message 7: 451 try later") {
		t.Errorf("problems %q", tb.Problems)
	}

	var md bytes.Buffer
	if err := tb.WriteMarkdown(&md, []profile{{Name: "smtp", Text: "flat flat%\n"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| Petrel | Postfix+Dovecot | ratio | goal |",
		"| Inbound SMTP | accepted/s | 1100 † | 400 | 2.75× |  |",
		"|  | delivered/s | 1000 † | 100 | 10.0× | ≥ 10× met |",
		"| Idle | KB/conn | 4.00 | 50.0 | 0.08× | ≤ 0.1× met |",
		"| IMAP FETCH | fetched/s | n/a | n/a | n/a |  |",
		"medians of 3 rounds",
		"- cpu: Test CPU",
		"| smtp | 80% | — |",
		"#### smtp\n\n```\nflat flat%\n```",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if strings.Contains(md.String(), "Not selected") {
		t.Errorf("markdown has a row for a scenario that did not run:\n%s", md.String())
	}
}

// A goal that is missed says so.
func TestBuildMissed(t *testing.T) {
	m, err := readManifest(strings.NewReader(testManifest))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeRuns(t, map[string]string{
		"r1-petrel-smtp.json": `{"ops_per_sec": 1000, "delivery": {"per_sec": 500}}`,
		"r1-anchor-smtp.json": `{"ops_per_sec": 500, "delivery": {"per_sec": 100}}`,
	})
	runs, _, err := readRuns(dir)
	if err != nil {
		t.Fatal(err)
	}
	tb := build(m, runs, nil)
	var md bytes.Buffer
	tb.WriteMarkdown(&md, nil)
	if !strings.Contains(md.String(), "| 5.00× | ≥ 10× **missed** |") {
		t.Errorf("missed goal not shown:\n%s", md.String())
	}
	if len(tb.Problems) != 0 {
		t.Errorf("problems %q", tb.Problems)
	}
}

func TestReadManifestErrors(t *testing.T) {
	for _, bad := range []string{
		"",                                    // no targets
		"target\tpetrel\n",                    // too few fields
		"bogus\tx\ty\n",                       // unknown record
		"target\tp\tP\nmetric\ts\tk\tl\tup\n", // not higher/lower
		"target\tp\tP\nmetric\ts\tk\tl\thigher\t3\n", // bad goal
		"target\tp\tP\ncpu\ts\tp\t1\tlots\n",         // bad busy percent
	} {
		if _, err := readManifest(strings.NewReader(bad)); err == nil {
			t.Errorf("readManifest(%q) accepted", bad)
		}
	}
}

// The command end to end: files in, markdown and JSON out.
func TestTableCmd(t *testing.T) {
	dir := t.TempDir()
	man := filepath.Join(dir, "manifest.tsv")
	os.WriteFile(man, []byte(testManifest), 0o644)
	raw := writeRuns(t, map[string]string{
		"r1-petrel-smtp.json": `{"ops_per_sec": 1000, "delivery": {"per_sec": 900}}`,
		"r1-anchor-smtp.json": `{"ops_per_sec": 500, "delivery": {"per_sec": 100}}`,
	})
	md, js := filepath.Join(dir, "r.md"), filepath.Join(dir, "r.json")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"table", "-manifest", man, "-raw", raw, "-md", md, "-json", js}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var tb Table
	if err := json.Unmarshal(b, &tb); err != nil {
		t.Fatal(err)
	}
	if len(tb.Rows) != 3 || tb.Rows[1].Ratio == nil || *tb.Rows[1].Ratio != 9 {
		t.Errorf("JSON table %s", b)
	}
	if b, _ := os.ReadFile(md); !strings.Contains(string(b), "| 9.00× | ≥ 10× **missed** |") {
		t.Errorf("markdown:\n%s", b)
	}
	if code := run([]string{"table", "-raw", raw}, &stdout, &stderr); code == 0 {
		t.Error("table without -manifest succeeded")
	}
	if code := run([]string{"nope"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown command: exit %d", code)
	}
	stdout.Reset()
	if code := run([]string{"port"}, &stdout, &stderr); code != 0 || strings.TrimSpace(stdout.String()) == "" {
		t.Errorf("port: exit %d, %q", code, stdout.String())
	}
}
