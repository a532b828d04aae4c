package results

import (
	"fmt"
	"slices"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Percentiles are a distribution's quantiles in nanoseconds.
type Percentiles struct {
	Count uint64 `json:"count"`
	P50   int64  `json:"p50"`
	P90   int64  `json:"p90"`
	P99   int64  `json:"p99"`
	P999  int64  `json:"p99_9"`
	P9999 int64  `json:"p99_99"`
	Max   int64  `json:"max"`
}

func percentilesOf(h *hdrhistogram.Histogram) Percentiles {
	return Percentiles{
		Count: uint64(h.TotalCount()),
		P50:   h.ValueAtQuantile(50), P90: h.ValueAtQuantile(90), P99: h.ValueAtQuantile(99),
		P999: h.ValueAtQuantile(99.9), P9999: h.ValueAtQuantile(99.99), Max: h.Max(),
	}
}

// minus returns p − q quantile by quantile (Count is p's).
func (p Percentiles) minus(q Percentiles) Percentiles {
	return Percentiles{Count: p.Count, P50: p.P50 - q.P50, P90: p.P90 - q.P90, P99: p.P99 - q.P99,
		P999: p.P999 - q.P999, P9999: p.P9999 - q.P9999, Max: p.Max - q.Max}
}

// Gap compares one histogram of two paths measured with the same transport
// and address family in one run: Base − Other per percentile. Phases of the
// same path from several rounds are merged first.
type Gap struct {
	Transport string `json:"transport"`
	Family    string `json:"family"`
	// Series is the compared histogram, by host and name (e.g. "sender.rtt").
	Series    string      `json:"series"`
	BasePath  string      `json:"base_path"`
	OtherPath string      `json:"other_path"`
	Base      Percentiles `json:"base"`
	Other     Percentiles `json:"other"`
	// Diff is Base − Other: how much more the base path takes, per percentile.
	Diff Percentiles `json:"diff"`
}

// GapSeries are the histograms ComputeGaps compares.
var GapSeries = []string{"sender.rtt", "sender.rtt_minus_residence"}

// ComputeGaps compares every path with base (e.g. "kernel") for each
// transport and family measured on both, for the GapSeries histograms.
func ComputeGaps(r *Result, series map[int][]*Series, base string) ([]Gap, error) {
	type key struct{ path, transport, family, series string }
	merged := map[key]*hdrhistogram.Histogram{}
	for _, ph := range r.Phases {
		for _, s := range series[ph.Index] {
			name := s.Host + "." + s.Name
			if !slices.Contains(GapSeries, name) {
				continue
			}
			k := key{ph.Path, ph.Transport, ph.Family, name}
			if merged[k] == nil {
				merged[k] = newHistogram()
			}
			if dropped := merged[k].Merge(s.Total()); dropped != 0 {
				return nil, fmt.Errorf("merge %s of phase %d: dropped %d values", name, ph.Index, dropped)
			}
		}
	}
	var gaps []Gap
	for k, h := range merged {
		if k.path != base {
			continue
		}
		for o, oh := range merged {
			if o.path == base || o.transport != k.transport || o.family != k.family || o.series != k.series {
				continue
			}
			if h.TotalCount() == 0 || oh.TotalCount() == 0 {
				continue
			}
			b, other := percentilesOf(h), percentilesOf(oh)
			gaps = append(gaps, Gap{Transport: k.transport, Family: k.family, Series: k.series, BasePath: base,
				OtherPath: o.path, Base: b, Other: other, Diff: b.minus(other)})
		}
	}
	slices.SortFunc(gaps, func(a, b Gap) int {
		for _, c := range [][2]string{{a.Family, b.Family}, {a.Transport, b.Transport}, {a.OtherPath, b.OtherPath}, {a.Series, b.Series}} {
			if c[0] != c[1] {
				if c[0] < c[1] {
					return -1
				}
				return 1
			}
		}
		return 0
	})
	return gaps, nil
}
