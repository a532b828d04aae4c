package results

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	hdrhistogram "github.com/HdrHistogram/hdrhistogram-go"
)

// File names in a run directory.
const (
	ResultFile = "result.json"
	HlogFile   = "histograms.hlog"
	// HgrmExt ends every percentile distribution file name.
	HgrmExt = ".hgrm"
)

// Percentile distribution file settings: HdrHistogram's text output with 5
// reporting ticks per half distance and nanosecond values divided by 1000, so
// the files show microseconds as is usual for latency .hgrm files.
const (
	hgrmTicksPerHalfDistance = 5
	hgrmValueScale           = 1000
)

// ErrUnsupportedSchema is wrapped by Load when result.json has another schema
// version than SchemaVersion.
var ErrUnsupportedSchema = errors.New("unsupported result schema version")

// ErrCorrupt is wrapped by Load and LoadHlog when a file cannot be parsed.
var ErrCorrupt = errors.New("corrupt file")

// Tag is the name of a series in file names and hlog tags:
// "<phase-prefix>.<host>.<name>", e.g. "p0-kernel-udp-ipv4.sender.rtt".
func Tag(p Phase, s *Series) string {
	return PhasePrefix(p) + "." + fileSafe(s.Host) + "." + fileSafe(s.Name)
}

// WriteRun writes a run directory: one .hgrm file per series, the interval log
// histograms.hlog, then result.json, each file atomically (written to a
// temporary file and renamed), so result.json is present only once the rest is
// and is never half written.
//
// series maps a phase index to that phase's series; every key must be the
// Index of one of r.Phases. WriteRun updates r to match the file: it sets
// r.Schema and r.Tool, and replaces the Histograms of each phase that has
// series with their summaries, whose File names the .hgrm file. An open,
// non-empty interval of a series (one that Rotate did not close) is logged as
// ending at its phase's Finished time.
//
// dir is created (mode 0755) if missing. Errors name the path that failed and
// fit on one line.
func WriteRun(dir string, r *Result, series map[int][]*Series) error {
	if err := prepareDir(dir); err != nil {
		return err
	}
	phaseAt := make(map[int]int, len(r.Phases))
	for i, p := range r.Phases {
		if _, dup := phaseAt[p.Index]; dup {
			return fmt.Errorf("write results to %s: two phases with index %d", dir, p.Index)
		}
		phaseAt[p.Index] = i
	}
	indexes := make([]int, 0, len(series))
	for idx := range series {
		if _, ok := phaseAt[idx]; !ok {
			return fmt.Errorf("write results to %s: series for phase %d, which is not in the result", dir, idx)
		}
		indexes = append(indexes, idx)
	}
	slices.Sort(indexes)

	var logged []loggedInterval
	for _, idx := range indexes {
		phase := &r.Phases[phaseAt[idx]]
		summaries := make([]Summary, 0, len(series[idx]))
		seen := make(map[string]bool, len(series[idx]))
		for _, s := range series[idx] {
			tag := Tag(*phase, s)
			if seen[tag] {
				return fmt.Errorf("write results to %s: phase %d has two series named %s", dir, idx, tag)
			}
			seen[tag] = true
			sum := Summarize(s)
			sum.File = tag + HgrmExt
			var hgrm bytes.Buffer
			if _, err := s.Total().PercentilesPrint(&hgrm, hgrmTicksPerHalfDistance, hgrmValueScale); err != nil {
				return fmt.Errorf("write results to %s: percentiles of %s: %w", dir, tag, err)
			}
			if err := writeFileAtomic(filepath.Join(dir, sum.File), hgrm.Bytes()); err != nil {
				return err
			}
			summaries = append(summaries, sum)

			for _, iv := range s.Intervals() {
				logged = append(logged, loggedInterval{tag: tag, Interval: iv})
			}
			open, ok, err := s.openInterval(phase.Finished)
			if err != nil {
				return fmt.Errorf("write results to %s: open interval of %s: %w", dir, tag, err)
			}
			if ok {
				logged = append(logged, loggedInterval{tag: tag, Interval: open})
			}
		}
		phase.Histograms = summaries
	}

	var hlog bytes.Buffer
	if err := writeHlog(&hlog, r.Started, logged); err != nil {
		return fmt.Errorf("write results to %s: %w", dir, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, HlogFile), hlog.Bytes()); err != nil {
		return err
	}

	r.Schema = SchemaVersion
	r.Tool = ToolName
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("write results to %s: encode %s: %w", dir, ResultFile, err)
	}
	return writeFileAtomic(filepath.Join(dir, ResultFile), append(js, '\n'))
}

// prepareDir creates dir if missing and checks that it is a directory.
func prepareDir(dir string) error {
	if dir == "" {
		return errors.New("write results: no directory given")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create results directory %s: %w", dir, err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("create results directory %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("create results directory %s: not a directory", dir)
	}
	// Root passes permission checks that some file systems still refuse, so
	// try rather than ask access(2).
	probe, err := os.CreateTemp(dir, ".stackgap-write-test-*")
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) {
			err = pathErr.Err
		}
		return fmt.Errorf("results directory %s is not writable: %w", dir, err)
	}
	_ = probe.Close()
	if err := os.Remove(probe.Name()); err != nil {
		return fmt.Errorf("results directory %s: remove write test file: %w", dir, err)
	}
	return nil
}

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path.
func writeFileAtomic(path string, data []byte) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

type loggedInterval struct {
	tag string
	Interval
}

// writeHlog writes an HdrHistogram interval log, format 1.3, with interval
// timestamps relative to a BaseTime no later than the run start or any
// interval (the format has no negative timestamps).
func writeHlog(w io.Writer, started time.Time, intervals []loggedInterval) error {
	slices.SortStableFunc(intervals, func(a, b loggedInterval) int {
		if c := a.Start.Compare(b.Start); c != 0 {
			return c
		}
		return cmp.Compare(a.tag, b.tag)
	})
	base := started
	if len(intervals) > 0 && (base.IsZero() || intervals[0].Start.Before(base)) {
		base = intervals[0].Start
	}
	baseMs := base.UnixMilli()
	startMs := baseMs
	if !started.IsZero() {
		startMs = started.UnixMilli()
	}

	lw := hdrhistogram.NewHistogramLogWriter(w)
	if err := lw.OutputComment("[Logged with " + ToolName + "]"); err != nil {
		return fmt.Errorf("write interval log: %w", err)
	}
	if err := lw.OutputLogFormatVersion(); err != nil {
		return fmt.Errorf("write interval log: %w", err)
	}
	// The library writes whole seconds only; the format (and its reader) take
	// milliseconds, as Java's HdrHistogram writes them.
	startLine := fmt.Sprintf("[StartTime: %.3f (seconds since epoch), %s]",
		float64(startMs)/1000, time.UnixMilli(startMs).UTC().Format("2006-01-02T15:04:05.000Z07:00"))
	if err := lw.OutputComment(startLine); err != nil {
		return fmt.Errorf("write interval log: %w", err)
	}
	if err := lw.OutputComment(fmt.Sprintf("[BaseTime: %.3f (seconds since epoch)]", float64(baseMs)/1000)); err != nil {
		return fmt.Errorf("write interval log: %w", err)
	}
	if err := lw.OutputLegend(); err != nil {
		return fmt.Errorf("write interval log: %w", err)
	}
	lw.SetBaseTime(baseMs)
	for _, iv := range intervals {
		h, err := iv.Histogram()
		if err != nil {
			return fmt.Errorf("write interval log: %s: %w", iv.tag, err)
		}
		h.SetTag(iv.tag)
		h.SetStartTimeMs(iv.Start.UnixMilli())
		h.SetEndTimeMs(iv.End.UnixMilli())
		if err := lw.OutputIntervalHistogram(h); err != nil {
			return fmt.Errorf("write interval log: %s: %w", iv.tag, err)
		}
	}
	return nil
}

// Load reads dir/result.json. The error names the file and says whether it is
// missing, corrupt (wraps ErrCorrupt) or of another schema version (wraps
// ErrUnsupportedSchema).
func Load(dir string) (*Result, error) {
	path := filepath.Join(dir, ResultFile)
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, dirErr := os.Stat(dir); dirErr != nil {
				return nil, fmt.Errorf("load results: %w", dirErr)
			}
			return nil, fmt.Errorf("load results: %s is not a run directory: %w", dir, err)
		}
		return nil, fmt.Errorf("load results: %w", err)
	}
	var head struct {
		Schema *int   `json:"schema"`
		Tool   string `json:"tool"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("load results: %s: %w: %s", path, ErrCorrupt, jsonProblem(data, err))
	}
	if head.Schema == nil {
		return nil, fmt.Errorf("load results: %s: %w: no schema version (not a %s result?)", path, ErrCorrupt, ToolName)
	}
	if *head.Schema != SchemaVersion {
		return nil, fmt.Errorf("load results: %s: %w %d (this %s reads version %d)",
			path, ErrUnsupportedSchema, *head.Schema, ToolName, SchemaVersion)
	}
	var r Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("load results: %s: %w: %s", path, ErrCorrupt, jsonProblem(data, err))
	}
	return &r, nil
}

// jsonProblem describes a JSON decoding error with the line it happened on.
func jsonProblem(data []byte, err error) string {
	var offset int64 = -1
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		offset = syntax.Offset
	case errors.As(err, &typ):
		offset = typ.Offset
	}
	if offset < 0 || offset > int64(len(data)) {
		return err.Error()
	}
	line := 1 + bytes.Count(data[:offset], []byte{'\n'})
	return fmt.Sprintf("line %d: %v", line, err)
}

// LoadHlog reads dir/histograms.hlog with hdrhistogram-go's log reader and
// returns, for every tag, the merge of its interval histograms.
func LoadHlog(dir string) (map[string]*hdrhistogram.Histogram, error) {
	path := filepath.Join(dir, HlogFile)
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load interval log: %w", err)
	}
	defer f.Close()
	reader := hdrhistogram.NewHistogramLogReader(f)
	merged := make(map[string]*hdrhistogram.Histogram)
	for n := 1; ; n++ {
		h, err := reader.NextIntervalHistogram()
		if err != nil {
			return nil, fmt.Errorf("load interval log: %s: %w: interval %d: %v", path, ErrCorrupt, n, err)
		}
		if h == nil {
			break
		}
		into, ok := merged[h.Tag()]
		if !ok {
			into = hdrhistogram.New(h.LowestTrackableValue(), h.HighestTrackableValue(), int(h.SignificantFigures()))
			into.SetTag(h.Tag())
			into.SetStartTimeMs(h.StartTimeMs())
			merged[h.Tag()] = into
		}
		if dropped := into.Merge(h); dropped != 0 {
			return nil, fmt.Errorf("load interval log: %s: interval %d of %q: %d values out of range", path, n, h.Tag(), dropped)
		}
		into.SetEndTimeMs(max(into.EndTimeMs(), h.EndTimeMs()))
	}
	return merged, nil
}
