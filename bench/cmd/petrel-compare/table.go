package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The manifest is what compare.sh and the scenario files declared, one tab-separated record a
// line:
//
//	info      KEY VALUE              machine and run facts, in the order given
//	target    NAME LABEL             the servers, the subject first and the anchor second
//	scenario  ID TITLE NEEDS
//	metric    ID JSONKEY LABEL higher|lower [GOAL]
//	na        ID TARGET REASON       the target cannot run the scenario
//	cpu       ID TARGET ROUND BUSY   percent of all CPUs busy during that run
//
// The results are petrel-load's JSON, one file per run: r<ROUND>-<TARGET>-<ID>.json.
type manifest struct {
	info      [][2]string
	targets   []target
	scenarios []scenarioDecl
	metrics   []metricDecl
	na        map[[2]string]string    // (scenario, target) -> reason
	cpu       map[[2]string][]float64 // (scenario, target) -> busy percent of each run
}

type target struct{ Name, Label string }

type scenarioDecl struct{ ID, Title, Needs string }

type metricDecl struct {
	Scenario string
	Key      string // dotted path into the result JSON
	Label    string
	Higher   bool // whether a higher value is better
	Goal     goal
}

// goal bounds the ratio subject/anchor: ">=3" or "<=0.1".
type goal struct {
	Op    string // ">=", "<=" or "" for none
	Bound float64
}

func parseGoal(s string) (goal, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return goal{}, nil
	}
	for _, op := range []string{">=", "<="} {
		if rest, ok := strings.CutPrefix(s, op); ok {
			b, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil || b <= 0 {
				break
			}
			return goal{Op: op, Bound: b}, nil
		}
	}
	return goal{}, fmt.Errorf("goal %q: want >=N or <=N with N > 0", s)
}

// met says whether ratio reaches the goal.
func (g goal) met(ratio float64) bool {
	switch g.Op {
	case ">=":
		return ratio >= g.Bound
	case "<=":
		return ratio <= g.Bound
	}
	return true
}

func (g goal) String() string {
	b := strconv.FormatFloat(g.Bound, 'g', -1, 64)
	switch g.Op {
	case ">=":
		return "≥ " + b + "×"
	case "<=":
		return "≤ " + b + "×"
	}
	return ""
}

func readManifest(r io.Reader) (*manifest, error) {
	m := &manifest{na: map[[2]string]string{}, cpu: map[[2]string][]float64{}}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Split(line, "\t")
		want := map[string]int{"info": 3, "target": 3, "scenario": 4, "metric": 5, "na": 4, "cpu": 5}[f[0]]
		if want == 0 || len(f) < want {
			return nil, fmt.Errorf("manifest line %d: bad record %q", n, line)
		}
		switch f[0] {
		case "info":
			m.info = append(m.info, [2]string{f[1], f[2]})
		case "target":
			m.targets = append(m.targets, target{f[1], f[2]})
		case "scenario":
			m.scenarios = append(m.scenarios, scenarioDecl{f[1], f[2], f[3]})
		case "metric":
			md := metricDecl{Scenario: f[1], Key: f[2], Label: f[3]}
			switch f[4] {
			case "higher":
				md.Higher = true
			case "lower":
			default:
				return nil, fmt.Errorf("manifest line %d: %q is not higher or lower", n, f[4])
			}
			if len(f) > 5 {
				g, err := parseGoal(f[5])
				if err != nil {
					return nil, fmt.Errorf("manifest line %d: %w", n, err)
				}
				md.Goal = g
			}
			m.metrics = append(m.metrics, md)
		case "na":
			m.na[[2]string{f[1], f[2]}] = f[3]
		case "cpu":
			busy, err := strconv.ParseFloat(f[4], 64)
			if err != nil {
				return nil, fmt.Errorf("manifest line %d: busy percent %q", n, f[4])
			}
			k := [2]string{f[1], f[2]}
			m.cpu[k] = append(m.cpu[k], busy)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(m.targets) == 0 {
		return nil, errors.New("manifest: no targets")
	}
	return m, nil
}

// result is one result file.
type result struct {
	Round    string
	Target   string
	Scenario string
	JSON     map[string]any
	Errors   int64
	First    []string
}

// parseRunName splits "r2-petrel-smtp-in-c8.json" into round, target and scenario. Target
// names have no dash; scenario ids may.
func parseRunName(name string) (round, target, scenario string, ok bool) {
	base, found := strings.CutSuffix(name, ".json")
	if !found || !strings.HasPrefix(base, "r") {
		return "", "", "", false
	}
	round, rest, ok1 := strings.Cut(base[1:], "-")
	target, scenario, ok2 := strings.Cut(rest, "-")
	if !ok1 || !ok2 || round == "" || target == "" || scenario == "" {
		return "", "", "", false
	}
	return round, target, scenario, true
}

// readRuns reads every result file of dir. A file that is not valid JSON (petrel-load failed
// before printing) is reported in bad and otherwise ignored.
func readRuns(dir string) (runs []result, bad []string, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		round, tgt, sc, ok := parseRunName(e.Name())
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, nil, err
		}
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			bad = append(bad, fmt.Sprintf("%s: no result (%v)", e.Name(), firstLine(err.Error())))
			continue
		}
		r := result{Round: round, Target: tgt, Scenario: sc, JSON: v}
		if n, ok := v["errors"].(float64); ok {
			r.Errors = int64(n)
		}
		if fe, ok := v["first_errors"].([]any); ok {
			for _, x := range fe {
				if s, ok := x.(string); ok {
					r.First = append(r.First, s)
				}
			}
		}
		runs = append(runs, r)
	}
	return runs, bad, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// lookup follows a dotted path ("delivery.per_sec") into decoded JSON.
func lookup(v map[string]any, path string) (float64, bool) {
	var cur any = v
	for _, k := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return 0, false
		}
		if cur, ok = m[k]; !ok {
			return 0, false
		}
	}
	f, ok := cur.(float64)
	return f, ok && !math.IsNaN(f) && !math.IsInf(f, 0)
}

// median of values; the mean of the two middle ones for an even count.
func median(values []float64) float64 {
	if len(values) == 0 {
		return math.NaN()
	}
	s := slices.Clone(values)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Cell is one target's figures for one metric.
type Cell struct {
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Runs   []float64 `json:"runs"`   // in round order
	Errors int64     `json:"errors"` // summed over the runs
	NA     string    `json:"na,omitempty"`
}

// Row is one metric of one scenario.
type Row struct {
	Scenario string           `json:"scenario"`
	Title    string           `json:"title"`
	Metric   string           `json:"metric"` // the JSON key
	Label    string           `json:"label"`
	Better   string           `json:"better"` // "higher" or "lower"
	Goal     string           `json:"goal,omitempty"`
	Cells    map[string]*Cell `json:"targets"`         // by target name
	Ratio    *float64         `json:"ratio,omitempty"` // first target's median / second's
	GoalMet  *bool            `json:"goal_met,omitempty"`
}

// Table is the whole comparison.
type Table struct {
	Info     map[string]string `json:"info"`
	Targets  []target          `json:"targets"`
	Rows     []Row             `json:"rows"`
	Problems []string          `json:"problems"` // errors counted in runs, unreadable results
	// CPUBusy is the median percent of all CPUs busy (server and load tool) during the runs
	// of each scenario, by scenario and target.
	CPUBusy  map[string]map[string]float64 `json:"cpu_busy"`
	cpuOrder []string                      // scenarios of CPUBusy in manifest order
	info     [][2]string                   // Info in manifest order, for the markdown
	rowGoal  []goal
}

const maxProblems = 50

// build computes the table. A scenario with neither results nor an n/a record (not selected
// in this run) has no rows.
func build(m *manifest, runs []result, bad []string) *Table {
	t := &Table{Info: map[string]string{}, Targets: m.targets, info: m.info, Problems: slices.Clone(bad)}
	for _, kv := range m.info {
		t.Info[kv[0]] = kv[1]
	}
	titles := map[string]string{}
	for _, s := range m.scenarios {
		titles[s.ID] = s.Title
	}
	slices.SortStableFunc(runs, func(a, b result) int {
		ra, _ := strconv.Atoi(a.Round)
		rb, _ := strconv.Atoi(b.Round)
		return ra - rb
	})
	for _, md := range m.metrics {
		row := Row{Scenario: md.Scenario, Title: titles[md.Scenario], Metric: md.Key, Label: md.Label,
			Better: "lower", Goal: md.Goal.String(), Cells: map[string]*Cell{}}
		if md.Higher {
			row.Better = "higher"
		}
		shown := false
		for _, tg := range m.targets {
			c := &Cell{NA: m.na[[2]string{md.Scenario, tg.Name}]}
			for _, r := range runs {
				if r.Scenario != md.Scenario || r.Target != tg.Name {
					continue
				}
				c.Errors += r.Errors
				if v, ok := lookup(r.JSON, md.Key); ok {
					c.Runs = append(c.Runs, v)
				}
			}
			if len(c.Runs) > 0 {
				c.Median = median(c.Runs)
				c.Min, c.Max = slices.Min(c.Runs), slices.Max(c.Runs)
				c.NA = ""
			}
			if len(c.Runs) > 0 || c.NA != "" {
				shown = true
			}
			row.Cells[tg.Name] = c
		}
		if !shown {
			continue
		}
		if len(m.targets) >= 2 {
			a, b := row.Cells[m.targets[0].Name], row.Cells[m.targets[1].Name]
			if len(a.Runs) > 0 && len(b.Runs) > 0 && b.Median != 0 {
				r := a.Median / b.Median
				row.Ratio = &r
				if md.Goal.Op != "" {
					met := md.Goal.met(r)
					row.GoalMet = &met
				}
			}
		}
		t.Rows = append(t.Rows, row)
		t.rowGoal = append(t.rowGoal, md.Goal)
	}
	// Each run that counted errors, with its first error; at most maxProblems lines.
	for _, r := range runs {
		if r.Errors == 0 || len(t.Problems) >= maxProblems {
			continue
		}
		msg := fmt.Sprintf("%s on %s, round %s: %d errors", r.Scenario, r.Target, r.Round, r.Errors)
		if len(r.First) > 0 {
			msg += ": " + r.First[0]
		}
		t.Problems = append(t.Problems, msg)
	}
	t.CPUBusy = map[string]map[string]float64{}
	for _, sc := range m.scenarios {
		for _, tg := range m.targets {
			if v := m.cpu[[2]string{sc.ID, tg.Name}]; len(v) > 0 {
				if t.CPUBusy[sc.ID] == nil {
					t.CPUBusy[sc.ID] = map[string]float64{}
					t.cpuOrder = append(t.cpuOrder, sc.ID)
				}
				t.CPUBusy[sc.ID][tg.Name] = median(v)
			}
		}
	}
	if t.Problems == nil {
		t.Problems = []string{}
	}
	return t
}

// formatNum prints a figure with as many digits as it deserves.
func formatNum(v float64) string {
	a := math.Abs(v)
	switch {
	case math.IsNaN(v):
		return "?"
	case a >= 100:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 0.1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	default:
		return strconv.FormatFloat(v, 'g', 2, 64)
	}
}

// WriteMarkdown writes the table, the machine and the problems.
func (t *Table) WriteMarkdown(w io.Writer, profiles []profile) error {
	var b strings.Builder
	subject, anchor := t.Targets[0].Label, ""
	if len(t.Targets) > 1 {
		anchor = t.Targets[1].Label
	}
	fmt.Fprintf(&b, "## %s", subject)
	if anchor != "" {
		fmt.Fprintf(&b, " and %s", anchor)
	}
	fmt.Fprintf(&b, ", medians of %s rounds (%s mode)\n\n", or(t.Info["rounds"], "?"), or(t.Info["mode"], "?"))
	b.WriteString("| scenario | metric |")
	for _, tg := range t.Targets {
		fmt.Fprintf(&b, " %s |", tg.Label)
	}
	if anchor != "" {
		b.WriteString(" ratio | goal |")
	}
	b.WriteString("\n| --- | --- |")
	for range t.Targets {
		b.WriteString(" ---: |")
	}
	if anchor != "" {
		b.WriteString(" ---: | --- |")
	}
	b.WriteString("\n")
	prev := ""
	for _, row := range t.Rows {
		title := row.Title
		if row.Scenario == prev {
			title = ""
		}
		prev = row.Scenario
		fmt.Fprintf(&b, "| %s | %s |", title, row.Label)
		for _, tg := range t.Targets {
			fmt.Fprintf(&b, " %s |", cellText(row.Cells[tg.Name]))
		}
		if anchor != "" {
			ratio := "n/a"
			if row.Ratio != nil {
				ratio = formatNum(*row.Ratio) + "×"
			}
			g := row.Goal
			if row.GoalMet != nil {
				if *row.GoalMet {
					g += " met"
				} else {
					g += " **missed**"
				}
			}
			fmt.Fprintf(&b, " %s | %s |", ratio, g)
		}
		b.WriteString("\n")
	}
	if anchor != "" {
		fmt.Fprintf(&b, "\nratio = %s / %s (medians); † = errors counted in some run (see below).\n", subject, anchor)
	}
	if len(t.cpuOrder) > 0 {
		b.WriteString("\n### CPU busy during the runs\n\nMedian percent of all CPUs busy (the servers and the load tool together); near 100 means CPU-bound.\n\n| scenario |")
		for _, tg := range t.Targets {
			fmt.Fprintf(&b, " %s |", tg.Label)
		}
		b.WriteString("\n| --- |")
		for range t.Targets {
			b.WriteString(" ---: |")
		}
		b.WriteString("\n")
		for _, id := range t.cpuOrder {
			fmt.Fprintf(&b, "| %s |", id)
			for _, tg := range t.Targets {
				if v, ok := t.CPUBusy[id][tg.Name]; ok {
					fmt.Fprintf(&b, " %.0f%% |", v)
				} else {
					b.WriteString(" — |")
				}
			}
			b.WriteString("\n")
		}
	}
	if len(t.info) > 0 {
		b.WriteString("\n### Machine and run\n\n")
		for _, kv := range t.info {
			if kv[0] == "rounds" || kv[0] == "mode" {
				continue
			}
			fmt.Fprintf(&b, "- %s: %s\n", kv[0], kv[1])
		}
	}
	if len(t.Problems) > 0 {
		b.WriteString("\n### Errors\n\n")
		for _, p := range t.Problems {
			fmt.Fprintf(&b, "- %s\n", p)
		}
	}
	if len(profiles) > 0 {
		fmt.Fprintf(&b, "\n### Profiles of %s\n", subject)
		for _, p := range profiles {
			fmt.Fprintf(&b, "\n#### %s\n\n```\n%s```\n", p.Name, p.Text)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func cellText(c *Cell) string {
	if c == nil || (len(c.Runs) == 0 && c.NA == "") {
		return "—"
	}
	if len(c.Runs) == 0 {
		return "n/a"
	}
	s := formatNum(c.Median)
	if c.Errors > 0 {
		s += " †"
	}
	return s
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// profile is the pprof summary of one profiled scenario.
type profile struct{ Name, Text string }

func readProfiles(dir string) ([]profile, error) {
	if dir == "" {
		return nil, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.txt"))
	if err != nil {
		return nil, err
	}
	var out []profile
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, profile{Name: strings.TrimSuffix(filepath.Base(f), ".txt"), Text: string(b)})
	}
	return out, nil
}

func tableCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("petrel-compare table", flag.ContinueOnError)
	fs.SetOutput(stderr)
	manifestFile := fs.String("manifest", "", "manifest `file` written by compare.sh")
	rawDir := fs.String("raw", "", "`directory` of petrel-load JSON results r<ROUND>-<TARGET>-<ID>.json")
	mdFile := fs.String("md", "", "write the markdown table to `file` (default: stdout)")
	jsonFile := fs.String("json", "", "write the table as JSON to `file`")
	profDir := fs.String("profiles", "", "`directory` of pprof summaries (ID.txt) to append")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *manifestFile == "" || *rawDir == "" {
		return errors.New("table: -manifest and -raw are required")
	}
	f, err := os.Open(*manifestFile)
	if err != nil {
		return err
	}
	m, err := readManifest(f)
	f.Close()
	if err != nil {
		return err
	}
	runs, bad, err := readRuns(*rawDir)
	if err != nil {
		return err
	}
	profiles, err := readProfiles(*profDir)
	if err != nil {
		return err
	}
	t := build(m, runs, bad)

	if *mdFile == "" {
		if err := t.WriteMarkdown(stdout, profiles); err != nil {
			return err
		}
	} else {
		mf, err := os.Create(*mdFile)
		if err != nil {
			return err
		}
		err = t.WriteMarkdown(mf, profiles)
		if cerr := mf.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if *jsonFile != "" {
		b, err := json.MarshalIndent(t, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
