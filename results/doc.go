// Package results owns stackgap's result model and its files: record first,
// report later.
//
// A run records one Series (an HDR histogram of nanosecond values, plus its
// 1-second interval histograms) per measured segment, then WriteRun stores the
// run directory:
//
//	result.json                          Result: schema version, options, environment,
//	                                     counters and a Summary of every histogram
//	<phase>.<host>.<name>.hgrm           one per histogram: HdrHistogram's text
//	                                     percentile distribution, values in MICROSECONDS
//	histograms.hlog                      every interval histogram, HdrHistogram log
//	                                     format 1.3, tagged <phase>.<host>.<name>
//
// <phase> is the phase prefix, e.g. "p0-kernel-udp-ipv4" (see PhasePrefix).
//
// Units: every value held in memory, in result.json and in histograms.hlog is
// in nanoseconds (the hlog's interval max column is in milliseconds, the
// HdrHistogram log convention for nanosecond histograms). The .hgrm files
// follow the common HdrHistogram convention for latency percentile files and
// print values in microseconds (valueScale 1000), with 5 reporting ticks per
// half distance, so they can be plotted next to wrk2's, jHiccup's or
// HdrHistogram's own output.
//
// Reports and comparisons are computed from the files (Load, LoadHlog) and can
// be recomputed at any time.
package results
