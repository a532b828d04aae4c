package results

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// tableWidth is the width PrintTable's lines are kept within, as long as
// histogram names are at most 28 characters.
const tableWidth = 100

// PrintTable writes a compact console summary of a run: a short header, then
// per phase one row per histogram (host, name, source, count, and p50, p90,
// p99, p99.9 and max in microseconds) and its counters.
func PrintTable(w io.Writer, r *Result) {
	p := &printer{w: w}
	p.linef("%s %s (commit %s), started %s, %s", ToolName, orDash(r.Version), orDash(r.Commit),
		formatTime(r.Started), formatDuration(r.Started, r.Finished))
	p.environment("sender", &r.Environment)
	if r.Environment.Reflector != nil {
		p.environment("reflector", r.Environment.Reflector)
	}
	for _, ph := range r.Phases {
		p.linef("")
		p.phase(&ph)
	}
	if len(r.Gaps) > 0 {
		p.linef("")
		p.gaps(r.Gaps)
	}
}

// gaps prints the path comparison: base − other per percentile, in µs.
func (p *printer) gaps(gaps []Gap) {
	p.linef("gap %s − %s per percentile (merged over rounds), values in µs", gaps[0].BasePath, gaps[0].OtherPath)
	p.linef("%-14s %-26s %-6s %9s %9s %9s %9s %9s %9s", "flow", "series", "path", "p50", "p90", "p99", "p99.9", "p99.99", "max")
	us := func(ns int64) string { return fmt.Sprintf("%.2f", float64(ns)/1000) }
	for _, g := range gaps {
		flow := g.Transport + " " + g.Family
		for _, row := range []struct {
			label string
			v     Percentiles
		}{{g.BasePath, g.Base}, {g.OtherPath, g.Other}, {"gap", g.Diff}} {
			v := row.v
			p.linef("%-14s %-26s %-6s %9s %9s %9s %9s %9s %9s", flow, g.Series, row.label,
				us(v.P50), us(v.P90), us(v.P99), us(v.P999), us(v.P9999), us(v.Max))
		}
	}
}

type printer struct{ w io.Writer }

// linef writes one line; write errors are the caller's writer's business (a
// console), as with fmt.Println.
func (p *printer) linef(format string, args ...any) {
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *printer) environment(role string, env *Environment) {
	parts := []string{orDash(env.Hostname), "kernel " + orDash(env.Kernel)}
	if env.CPUs > 0 {
		parts = append(parts, fmt.Sprintf("%d CPUs", env.CPUs))
	}
	if env.ClockSource != "" {
		parts = append(parts, "clocksource "+env.ClockSource)
	}
	if ifc := env.Interface; ifc != nil {
		s := "interface " + ifc.Name
		if ifc.Driver != "" {
			s += " (" + ifc.Driver + ")"
		}
		if ifc.MTU > 0 {
			s += fmt.Sprintf(" mtu %d", ifc.MTU)
		}
		parts = append(parts, s)
	}
	p.linef("%s: %s", role, strings.Join(parts, ", "))
}

func (p *printer) phase(ph *Phase) {
	p.linef("phase %d: %s %s %s, %s, %s, values in µs", ph.Index, orDash(ph.Path), orDash(ph.Transport),
		orDash(ph.Family), formatDuration(ph.Started, ph.Finished), formatCPUs(ph.SenderCPU, ph.ReflectorCPU))
	nameWidth := len("name")
	for _, h := range ph.Histograms {
		nameWidth = max(nameWidth, len(h.Name))
	}
	row := func(host, name, source, count string, values [5]string) {
		p.linef("%-9s %-*s %-6s %10s %9s %9s %9s %9s %9s", host, nameWidth, name, source, count,
			values[0], values[1], values[2], values[3], values[4])
	}
	if len(ph.Histograms) == 0 {
		p.linef("(no histograms)")
	} else {
		row("host", "name", "source", "count", [5]string{"p50", "p90", "p99", "p99.9", "max"})
	}
	var outOfRange []string
	for _, h := range ph.Histograms {
		values := [5]string{"-", "-", "-", "-", "-"}
		if h.Count > 0 {
			for i, ns := range []int64{h.P50, h.P90, h.P99, h.P999, h.Max} {
				values[i] = fmt.Sprintf("%.2f", float64(ns)/1000)
			}
		}
		row(h.Host, h.Name, h.Source, fmt.Sprint(h.Count), values)
		if h.OutOfRange > 0 {
			outOfRange = append(outOfRange, fmt.Sprintf("%s/%s %d", h.Host, h.Name, h.OutOfRange))
		}
	}
	c := ph.Counters
	p.wrapped("counters", []string{
		fmt.Sprintf("sent %d", c.Sent), fmt.Sprintf("received %d", c.Received),
		fmt.Sprintf("lost %d", c.Lost), fmt.Sprintf("dup %d", c.Duplicated),
		fmt.Sprintf("reordered %d", c.Reordered), fmt.Sprintf("late %d", c.Late),
	})
	p.wrapped("warmup", []string{
		fmt.Sprintf("sent %d", c.WarmupSent), fmt.Sprintf("received %d", c.WarmupReceived),
		fmt.Sprintf("lost %d", c.WarmupLost),
	})
	if len(outOfRange) > 0 {
		p.wrapped("out of range", outOfRange)
	}
	if len(c.Missing) > 0 {
		p.wrapped("missing stamps", counterItems(c.Missing))
	}
	if len(c.Other) > 0 {
		p.wrapped("other", counterItems(c.Other))
	}
	if len(c.Reflector) > 0 {
		p.wrapped("reflector counters", counterItems(c.Reflector))
	}
	for _, n := range ph.Notes {
		p.linef("note: %s", n)
	}
}

func formatCPUs(sender, reflector int) string {
	cpu := func(n int) string {
		if n < 0 {
			return "?"
		}
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("cpu sender %s reflector %s", cpu(sender), cpu(reflector))
}

// wrapped writes "label: item  item ..." and continues on indented lines
// rather than pass tableWidth.
func (p *printer) wrapped(label string, items []string) {
	const indent = "    "
	line := label + ":"
	for i, item := range items {
		if i > 0 && len(line)+2+len(item) > tableWidth {
			p.linef("%s", line)
			line = indent + item
			continue
		}
		if i == 0 {
			line += " " + item
		} else {
			line += "  " + item
		}
	}
	p.linef("%s", line)
}

func counterItems(m map[string]uint64) []string {
	items := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		items = append(items, fmt.Sprintf("%s %d", k, m[k]))
	}
	return items
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func formatDuration(start, end time.Time) string {
	if start.IsZero() || end.IsZero() {
		return "duration unknown"
	}
	return fmt.Sprintf("%.1f s", end.Sub(start).Seconds())
}
