package mailtest

import (
	"io"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Scrape parses a Prometheus text exposition with Prometheus's own parser and returns every
// sample by series, written name{label="value",...} with the labels sorted; a histogram
// gives its _count and _sum. A parse error fails the test.
func Scrape(t testing.TB, exposition io.Reader) map[string]float64 {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(exposition)
	if err != nil {
		t.Fatalf("metrics do not parse: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(labels)
			series := func(suffix string) string {
				if len(labels) == 0 {
					return name + suffix
				}
				return name + suffix + "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[series("")] = m.GetCounter().GetValue()
			case m.Gauge != nil:
				out[series("")] = m.GetGauge().GetValue()
			case m.Histogram != nil:
				out[series("_count")] = float64(m.GetHistogram().GetSampleCount())
				out[series("_sum")] = m.GetHistogram().GetSampleSum()
			case m.Untyped != nil:
				out[series("")] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}
