package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram geometry of every Series: nanoseconds from 1 ns to 60 s with 3
// significant digits (a relative error of at most 0.1 %).
const (
	MinValue          = 1
	MaxValue          = int64(60 * time.Second)
	SignificantDigits = 3
)

// Host names used in Series.Host.
const (
	HostSender    = "sender"
	HostReflector = "reflector"
)

// Sources used in Series.Source: which clock or mechanism fed the values.
const (
	SourceUser  = "user"
	SourceSW    = "sw"
	SourceHW    = "hw"
	SourceBPF   = "bpf"
	SourceMixed = "mixed"
)

// Series is the HDR histogram of one measured segment (e.g. the round trip, or
// user space to TX_SCHED on the sender) together with its closed 1-second
// interval histograms, kept compressed for the .hlog.
//
// A Series is not safe for concurrent use: one goroutine records and rotates,
// and the Series is read or marshalled after recording stopped.
type Series struct {
	// Name identifies the segment, e.g. "rtt" or "tx.user_to_sched".
	Name string
	// Host is where the values were measured: HostSender or HostReflector.
	Host string
	// Source is the stamp source that fed the values: "user", "sw", "hw",
	// "bpf" or "mixed".
	Source string
	// Layer says in free text which layers the segment spans, e.g. "socket+protocol".
	Layer string

	current      *hdrhistogram.Histogram // the open interval's values
	currentStart time.Time
	closedCount  uint64 // values in closed intervals, pending ones included
	outOfRange   uint64
	// closed holds what Rotate hands to the background: the total of the
	// closed intervals and their encodings. Read it only after closed.wait().
	closed *closedIntervals
}

// closedIntervals receives the intervals Rotate closes. Compressing an
// interval histogram takes about a millisecond, so it happens on another
// goroutine: the measuring thread only swaps histograms.
type closedIntervals struct {
	mu        sync.Mutex
	pending   sync.WaitGroup
	total     *hdrhistogram.Histogram
	intervals []Interval
	// spares are reset histograms ready to become the next open interval.
	spares chan *hdrhistogram.Histogram
}

func newClosedIntervals() *closedIntervals {
	return &closedIntervals{total: newHistogram(), spares: make(chan *hdrhistogram.Histogram, 2)}
}

// add encodes one closed interval and merges it into the total.
func (c *closedIntervals) add(h *hdrhistogram.Histogram, start, end time.Time) {
	defer c.pending.Done()
	enc, err := encodeHistogram(h)
	c.mu.Lock()
	c.total.Merge(h) // same geometry: drops nothing
	if err == nil {
		// Encoding into memory does not fail in practice; if it did, the
		// values still count in the total and only the .hlog interval is missing.
		c.intervals = append(c.intervals, Interval{Start: start, End: end, Encoded: enc})
	}
	c.mu.Unlock()
	h.Reset()
	select {
	case c.spares <- h:
	default:
	}
}

// wait returns once every closed interval is encoded and merged, intervals in time order.
func (c *closedIntervals) wait() {
	c.pending.Wait()
	c.mu.Lock()
	slices.SortFunc(c.intervals, func(a, b Interval) int { return a.Start.Compare(b.Start) })
	c.mu.Unlock()
}

func (c *closedIntervals) spare() *hdrhistogram.Histogram {
	select {
	case h := <-c.spares:
		return h
	default:
		return newHistogram()
	}
}

// Interval is one closed interval histogram of a Series.
type Interval struct {
	Start, End time.Time
	// Encoded is the interval histogram in HdrHistogram's V2 compressed
	// encoding, base64 (the form used in .hlog lines).
	Encoded string
}

// Histogram decodes the interval histogram.
func (iv Interval) Histogram() (*hdrhistogram.Histogram, error) {
	h, err := decodeHistogram(iv.Encoded)
	if err != nil {
		return nil, fmt.Errorf("decode interval %s: %w", iv.Start.Format(time.RFC3339Nano), err)
	}
	return h, nil
}

// NewSeries returns an empty series whose first interval starts at start.
func NewSeries(name, host, source, layer string, start time.Time) *Series {
	prepareEncoder()
	return &Series{
		Name:         name,
		Host:         host,
		Source:       source,
		Layer:        layer,
		current:      newHistogram(),
		currentStart: start,
		closed:       newClosedIntervals(),
	}
}

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(MinValue, MaxValue, SignificantDigits)
}

// Record adds one value in nanoseconds. Values ≤ 0 or above MaxValue are not
// recorded but counted (see OutOfRange). Record does not allocate.
func (s *Series) Record(ns int64) {
	if ns < MinValue || ns > MaxValue {
		s.outOfRange++
		return
	}
	// In range and far from overflowing the total count, so this cannot fail;
	// the check keeps a future library change from dropping values silently.
	if s.current.RecordValue(ns) != nil {
		s.outOfRange++
	}
}

// Count is the number of recorded values (out-of-range values excluded).
func (s *Series) Count() uint64 {
	return s.closedCount + uint64(s.current.TotalCount())
}

// OutOfRange is the number of values that were not recorded because they were
// ≤ 0 or above MaxValue.
func (s *Series) OutOfRange() uint64 { return s.outOfRange }

// Total is the histogram of every recorded value, the open interval's
// included. After a Rotate (with no Record since) it is the Series' own
// histogram, otherwise a new one; do not modify it.
func (s *Series) Total() *hdrhistogram.Histogram {
	s.closed.wait()
	if s.current.TotalCount() == 0 {
		return s.closed.total
	}
	total := s.closed.total.Clone()
	total.Merge(s.current)
	return total
}

// Intervals returns the closed intervals, oldest first. Intervals with no
// values are not kept. The returned slice must not be modified.
func (s *Series) Intervals() []Interval {
	s.closed.wait()
	return s.closed.intervals
}

// Rotate closes the current interval at now and starts the next one there.
// The engine calls it once at least a second has passed, and once when the
// phase ends. On the calling thread it only swaps the open histogram for a
// spare one (a few microseconds); compressing the closed interval (about a
// millisecond: mostly the zlib state hdrhistogram-go sets up per encoding) and
// merging it into the total happen on another goroutine. Closing an empty
// interval costs nothing.
func (s *Series) Rotate(now time.Time) {
	if n := s.current.TotalCount(); n > 0 {
		end := now
		if end.Before(s.currentStart) {
			end = s.currentStart
		}
		full := s.current
		s.current = s.closed.spare()
		s.closedCount += uint64(n)
		s.closed.pending.Add(1)
		go s.closed.add(full, s.currentStart, end)
	}
	s.currentStart = now
}

// openInterval returns the open interval as an Interval ending at end (or at
// its start, if end is earlier), and false when it holds no value.
func (s *Series) openInterval(end time.Time) (Interval, bool, error) {
	if s.current.TotalCount() == 0 {
		return Interval{}, false, nil
	}
	if end.Before(s.currentStart) {
		end = s.currentStart
	}
	enc, err := encodeHistogram(s.current)
	if err != nil {
		return Interval{}, false, err
	}
	return Interval{Start: s.currentStart, End: end, Encoded: enc}, true, nil
}

// decodeHistogram decodes a V2 compressed, base64 histogram and insists on the
// Series geometry, so that merging it can never drop values.
func decodeHistogram(enc string) (*hdrhistogram.Histogram, error) {
	h, err := hdrhistogram.Decode([]byte(enc))
	if err != nil {
		return nil, err
	}
	if h.LowestTrackableValue() != MinValue || h.HighestTrackableValue() != MaxValue ||
		h.SignificantFigures() != SignificantDigits {
		return nil, fmt.Errorf("histogram geometry %d..%d with %d digits, want %d..%d with %d",
			h.LowestTrackableValue(), h.HighestTrackableValue(), h.SignificantFigures(),
			MinValue, MaxValue, SignificantDigits)
	}
	return h, nil
}

// seriesJSON is the wire and file form of a Series.
type seriesJSON struct {
	Name       string         `json:"name"`
	Host       string         `json:"host"`
	Source     string         `json:"source"`
	Layer      string         `json:"layer"`
	OutOfRange uint64         `json:"out_of_range"`
	Intervals  []intervalJSON `json:"intervals"`
	// Open is the interval still open when the series was marshalled; its
	// histogram is empty when it holds no value.
	Open intervalJSON `json:"open"`
}

type intervalJSON struct {
	Start     time.Time `json:"start"`
	End       time.Time `json:"end,omitzero"`
	Histogram string    `json:"histogram,omitempty"`
}

// MarshalJSON encodes the series with its closed intervals and its open one,
// each histogram in HdrHistogram's compressed base64 encoding. The total is
// not sent: it is the sum of the intervals.
func (s *Series) MarshalJSON() ([]byte, error) {
	out := seriesJSON{
		Name:       s.Name,
		Host:       s.Host,
		Source:     s.Source,
		Layer:      s.Layer,
		OutOfRange: s.outOfRange,
		Open:       intervalJSON{Start: s.currentStart},
	}
	intervals := s.Intervals()
	out.Intervals = make([]intervalJSON, len(intervals))
	for i, iv := range intervals {
		out.Intervals[i] = intervalJSON{Start: iv.Start, End: iv.End, Histogram: iv.Encoded}
	}
	if s.current.TotalCount() > 0 {
		enc, err := encodeHistogram(s.current)
		if err != nil {
			return nil, fmt.Errorf("marshal series %s/%s: %w", s.Host, s.Name, err)
		}
		out.Open.Histogram = enc
	}
	return json.Marshal(out)
}

// UnmarshalJSON restores a series written by MarshalJSON, rebuilding its total
// from the intervals.
func (s *Series) UnmarshalJSON(data []byte) error {
	var in seriesJSON
	if err := json.Unmarshal(data, &in); err != nil {
		return fmt.Errorf("unmarshal series: %w", err)
	}
	restored := NewSeries(in.Name, in.Host, in.Source, in.Layer, in.Open.Start)
	restored.outOfRange = in.OutOfRange
	merge := func(into *hdrhistogram.Histogram, enc string) error {
		h, err := decodeHistogram(enc)
		if err != nil {
			return err
		}
		if dropped := into.Merge(h); dropped != 0 {
			return fmt.Errorf("merge dropped %d values", dropped)
		}
		return nil
	}
	for i, iv := range in.Intervals {
		if iv.Histogram == "" {
			return fmt.Errorf("unmarshal series %s/%s: interval %d: %w", in.Host, in.Name, i, errors.New("no histogram"))
		}
		if err := merge(restored.closed.total, iv.Histogram); err != nil {
			return fmt.Errorf("unmarshal series %s/%s: interval %d: %w", in.Host, in.Name, i, err)
		}
		restored.closed.intervals = append(restored.closed.intervals, Interval{Start: iv.Start, End: iv.End, Encoded: iv.Histogram})
	}
	if in.Open.Histogram != "" {
		if err := merge(restored.current, in.Open.Histogram); err != nil {
			return fmt.Errorf("unmarshal series %s/%s: open interval: %w", in.Host, in.Name, err)
		}
	}
	restored.closedCount = uint64(restored.closed.total.TotalCount())
	*s = *restored
	return nil
}
