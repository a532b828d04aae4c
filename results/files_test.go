package results

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// testRun builds a two-phase run with series on both hosts. Times are UTC
// without a monotonic reading, as they come back from JSON.
func testRun(t *testing.T) (*Result, map[int][]*Series) {
	t.Helper()
	started := t0
	r := &Result{
		Version:  "v0.0.0-test",
		Commit:   "0123abc",
		Started:  started,
		Finished: started.Add(10 * time.Second),
		Command:  []string{"stackgap", "run", "--duration", "3s"},
		Options: map[string]any{
			"duration": "3s", "rate": float64(1000), "spin": true,
			"paths": []any{"kernel", "xdp"}, "cpu": map[string]any{"sender": float64(0)},
		},
		Environment: Environment{
			Hostname: "a", Kernel: "6.18.0", CPUModel: "Test CPU", CPUs: 2, ClockSource: "tsc",
			Interface: &Interface{
				Name: "veth0", Driver: "veth", DriverVersion: "1.0", BusInfo: "", MTU: 1500,
				Features: map[string]bool{"rx-checksum": true, "tx-tcp-segmentation": false},
				Timestamping: &Timestamping{
					Capabilities: []string{"software-transmit", "software-receive"},
					PHCIndex:     -1, TxTypes: []string{}, RxFilters: []string{},
				},
			},
			Reflector: &Environment{Hostname: "b", Kernel: "6.18.0", CPUs: 2, Notes: []string{"no interface"}},
		},
	}
	series := map[int][]*Series{}
	for i, ph := range []Phase{
		{Index: 0, Path: "kernel", Transport: "udp", Family: "ipv4"},
		{Index: 1, Path: "xdp", Transport: "tcp", Family: "ipv6"},
	} {
		ph.Started = started.Add(time.Duration(i*4) * time.Second)
		ph.Finished = ph.Started.Add(3500 * time.Millisecond)
		ph.Counters = Counters{
			Sent: 3000, Received: 2998, Lost: 2, Reordered: 1, WarmupSent: 100, WarmupReceived: 100,
			Missing:   map[string]uint64{"tx_hardware": 3000},
			Reflector: map[string]uint64{"reflected": 2999, "dropped_token": 0},
		}
		r.Phases = append(r.Phases, ph)
		var list []*Series
		for j, id := range [][4]string{
			{"rtt", HostSender, SourceUser, "all"},
			{"tx.user_to_sched", HostSender, SourceSW, "socket+protocol"},
			{"residence", HostReflector, SourceSW, "device+protocol+socket"},
			{"tx.sched_to_wire", HostSender, SourceHW, "device+driver"}, // stays empty
		} {
			s := NewSeries(id[0], id[1], id[2], id[3], ph.Started)
			if id[2] != SourceHW {
				for k, v := range latencies(uint64(10*i+j), 3000) {
					s.Record(v * int64(j+1))
					if k%1000 == 999 && k < 2999 {
						s.Rotate(ph.Started.Add(time.Duration(k/1000+1) * time.Second))
					}
				}
				s.Record(-1)
			}
			// The last interval is left open on purpose: WriteRun logs it too.
			list = append(list, s)
		}
		series[ph.Index] = list
	}
	return r, series
}

func asJSON(v any) string {
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

func TestWriteRunLoadRoundTrip(t *testing.T) {
	r, series := testRun(t)
	dir := filepath.Join(t.TempDir(), "runs", "first") // created by WriteRun
	if err := WriteRun(dir, r, series); err != nil {
		t.Fatalf("WriteRun: %v", err)
	}
	if r.Schema != SchemaVersion || r.Tool != ToolName {
		t.Errorf("WriteRun did not set schema and tool: %d %q", r.Schema, r.Tool)
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if !reflect.DeepEqual(r, got) {
		t.Fatalf("unexpected result after round trip (-want +got):\n-%s\n+%s", asJSON(r), asJSON(got))
	}

	for _, ph := range got.Phases {
		if len(ph.Histograms) != len(series[ph.Index]) {
			t.Fatalf("phase %d: got %d summaries, want %d", ph.Index, len(ph.Histograms), len(series[ph.Index]))
		}
		for i, s := range series[ph.Index] {
			want := Summarize(s)
			want.File = PhasePrefix(ph) + "." + s.Host + "." + s.Name + ".hgrm"
			if ph.Histograms[i] != want {
				t.Errorf("phase %d: unexpected summary (-want +got):\n-%+v\n+%+v", ph.Index, want, ph.Histograms[i])
			}
		}
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
		if info, err := e.Info(); err != nil || info.Mode().Perm() != 0o644 {
			t.Errorf("%s: unexpected mode %v (%v)", e.Name(), info.Mode(), err)
		}
	}
	wantNames := []string{HlogFile, ResultFile}
	for _, ph := range got.Phases {
		for _, h := range ph.Histograms {
			wantNames = append(wantNames, h.File)
		}
	}
	slices.Sort(wantNames)
	if !slices.Equal(names, wantNames) {
		t.Errorf("unexpected files (no temporary file may remain):\n got %v\nwant %v", names, wantNames)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("unexpected directory mode: %v (%v)", fi.Mode(), err)
	}

	// Writing the run again over the same directory replaces the files.
	if err := WriteRun(dir, r, series); err != nil {
		t.Fatalf("WriteRun again: %v", err)
	}
}

// TestHgrmFiles parses the .hgrm files back: header, the p50 line and the
// footer's total count.
func TestHgrmFiles(t *testing.T) {
	r, series := testRun(t)
	dir := t.TempDir()
	if err := WriteRun(dir, r, series); err != nil {
		t.Fatalf("WriteRun: %v", err)
	}
	for _, ph := range r.Phases {
		for _, h := range ph.Histograms {
			t.Run(h.File, func(t *testing.T) {
				f, err := os.Open(filepath.Join(dir, h.File))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				sc := bufio.NewScanner(f)
				if !sc.Scan() || strings.Join(strings.Fields(sc.Text()), " ") != "Value Percentile TotalCount 1/(1-Percentile)" {
					t.Fatalf("unexpected header line %q", sc.Text())
				}
				var p50Line, totalLine string
				for sc.Scan() {
					fields := strings.Fields(sc.Text())
					if len(fields) == 4 && fields[1] == "0.500000" && p50Line == "" {
						p50Line = sc.Text()
					}
					if strings.Contains(sc.Text(), "Total count") {
						totalLine = sc.Text()
					}
				}
				if h.Count == 0 {
					if p50Line != "" {
						t.Errorf("empty histogram has a p50 line %q", p50Line)
					}
					return
				}
				if p50Line == "" {
					t.Fatalf("no p50 line")
				}
				// Values are in microseconds with 3 decimals.
				if got, want := strings.Fields(p50Line)[0], fmt.Sprintf("%.3f", float64(h.P50)/1000); got != want {
					t.Errorf("p50 line %q: value %s, want %s µs", p50Line, got, want)
				}
				if want := fmt.Sprintf("Total count    = %12d]", h.Count); !strings.HasSuffix(totalLine, want) {
					t.Errorf("footer %q does not end with %q", totalLine, want)
				}
			})
		}
	}
}

func TestLoadHlogMatchesTotals(t *testing.T) {
	r, series := testRun(t)
	dir := t.TempDir()
	if err := WriteRun(dir, r, series); err != nil {
		t.Fatalf("WriteRun: %v", err)
	}
	merged, err := LoadHlog(dir)
	if err != nil {
		t.Fatalf("LoadHlog: %v", err)
	}
	wantTags := 0
	for _, ph := range r.Phases {
		for _, s := range series[ph.Index] {
			tag := Tag(ph, s)
			if s.Count() == 0 {
				if _, ok := merged[tag]; ok {
					t.Errorf("%s: empty series logged", tag)
				}
				continue
			}
			wantTags++
			h, ok := merged[tag]
			if !ok {
				t.Errorf("%s: not in the log", tag)
				continue
			}
			if !h.Equals(s.Total()) {
				t.Errorf("%s: merged intervals (%d values) differ from the total (%d values)", tag, h.TotalCount(), s.Total().TotalCount())
			}
			// Absolute times survive the relative timestamps and BaseTime header.
			if got, want := h.StartTimeMs(), ph.Started.UnixMilli(); got != want {
				t.Errorf("%s: first interval starts at %d ms, want %d ms", tag, got, want)
			}
			if got, want := h.EndTimeMs(), ph.Finished.UnixMilli(); got != want {
				t.Errorf("%s: last interval ends at %d ms, want %d ms (the phase end)", tag, got, want)
			}
		}
	}
	if len(merged) != wantTags {
		t.Errorf("unexpected number of tags: got %d, want %d", len(merged), wantTags)
	}

	data, err := os.ReadFile(filepath.Join(dir, HlogFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#[Histogram log format version 1.3]", "#[StartTime: ", "#[BaseTime: ", "Tag=p0-kernel-udp-ipv4.sender.rtt,0.000000,1.000000,"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("interval log lacks %q", want)
		}
	}
}

func TestWriteRunErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dir     string
		change  func(r *Result, s map[int][]*Series)
		wantErr string
	}{
		{name: "directory is a file", dir: file, wantErr: file + ": not a directory"},
		{name: "parent is a file", dir: filepath.Join(file, "run"), wantErr: filepath.Join(file, "run")},
		// sysfs refuses new files even to root.
		{name: "directory not writable", dir: "/sys", wantErr: "results directory /sys is not writable: permission denied"},
		{name: "no directory", dir: "", wantErr: "no directory"},
		{
			name:    "series of an unknown phase",
			change:  func(r *Result, s map[int][]*Series) { s[7] = s[0] },
			wantErr: "series for phase 7",
		},
		{
			name:    "two series with one name",
			change:  func(r *Result, s map[int][]*Series) { s[0] = append(s[0], s[0][0]) },
			wantErr: "two series named p0-kernel-udp-ipv4.sender.rtt",
		},
		{
			name:    "two phases with one index",
			change:  func(r *Result, s map[int][]*Series) { r.Phases[1].Index = 0 },
			wantErr: "two phases with index 0",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, series := testRun(t)
			if tt.change != nil {
				tt.change(r, series)
			}
			dir := tt.dir
			if dir == "" && tt.change != nil {
				dir = t.TempDir()
			}
			err := WriteRun(dir, r, series)
			if err == nil {
				t.Fatalf("WriteRun(%q) succeeded, want an error containing %q", dir, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("unexpected error %q, want one line containing %q", err, tt.wantErr)
			}
			if _, statErr := os.Stat(filepath.Join(dir, ResultFile)); dir != "/sys" && statErr == nil {
				t.Errorf("a failed WriteRun left %s", ResultFile)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	base := t.TempDir()
	write := func(name, content string) string {
		dir := filepath.Join(base, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if content != "" {
			if err := os.WriteFile(filepath.Join(dir, ResultFile), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	r, series := testRun(t)
	good := filepath.Join(base, "good")
	if err := WriteRun(good, r, series); err != nil {
		t.Fatal(err)
	}
	full, err := os.ReadFile(filepath.Join(good, ResultFile))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		dir      string
		wantIs   error
		wantText []string
	}{
		{"missing directory", filepath.Join(base, "nope"), fs.ErrNotExist, []string{filepath.Join(base, "nope")}},
		{"no result.json", write("empty", ""), fs.ErrNotExist, []string{"not a run directory", filepath.Join(base, "empty")}},
		{"truncated JSON", write("truncated", string(full[:len(full)/2])), ErrCorrupt,
			[]string{filepath.Join(base, "truncated", ResultFile), "corrupt file", "unexpected end of JSON input"}},
		{"syntax error", write("syntax", "{\n\"schema\": 1,\n\"tool\": stackgap\n}"), ErrCorrupt,
			[]string{filepath.Join(base, "syntax", ResultFile), "line 3"}},
		{"wrong type", write("type", `{"schema": 1, "phases": "none"}`), ErrCorrupt,
			[]string{filepath.Join(base, "type", ResultFile), "line 1"}},
		{"no schema", write("noschema", `{"tool": "other"}`), ErrCorrupt,
			[]string{filepath.Join(base, "noschema", ResultFile), "no schema version"}},
		{"newer schema", write("v2", `{"schema": 2, "tool": "stackgap", "phases": {"changed": true}}`), ErrUnsupportedSchema,
			[]string{filepath.Join(base, "v2", ResultFile), "version 2", "reads version 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Load(tt.dir)
			if err == nil {
				t.Fatalf("Load succeeded: %+v", got)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("error %q does not wrap %v", err, tt.wantIs)
			}
			for _, want := range tt.wantText {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q is not one line", err)
			}
		})
	}

	if _, err := LoadHlog(filepath.Join(base, "empty")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadHlog of a directory without a log: got %v, want a not-exist error", err)
	}
	corruptLog := write("badlog", "")
	if err := os.WriteFile(filepath.Join(corruptLog, HlogFile), []byte("Tag=x,0.000,1.000,0.1,HISTnotbase64!\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHlog(corruptLog); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), HlogFile) {
		t.Errorf("LoadHlog of a corrupt log: got %v, want ErrCorrupt naming the file", err)
	}
}

func TestPhasePrefixAndTag(t *testing.T) {
	ph := Phase{Index: 3, Path: "xdp", Transport: "tcp", Family: "ipv6"}
	if got, want := PhasePrefix(ph), "p3-xdp-tcp-ipv6"; got != want {
		t.Errorf("unexpected prefix: got %q, want %q", got, want)
	}
	s := NewSeries("odd name,with/chars", HostReflector, SourceSW, "", t0)
	if got, want := Tag(ph, s), "p3-xdp-tcp-ipv6.reflector.odd_name_with_chars"; got != want {
		t.Errorf("unexpected tag: got %q, want %q", got, want)
	}
}
