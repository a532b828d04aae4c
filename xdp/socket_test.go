package xdp

import (
	"strings"
	"testing"
	"time"
	"unsafe"
)

func TestParseMode(t *testing.T) {
	for _, s := range []string{"auto", "copy", "zerocopy"} {
		if m, err := ParseMode(s); err != nil || string(m) != s {
			t.Errorf("ParseMode(%q) = %q, %v", s, m, err)
		}
	}
	if _, err := ParseMode("zc"); err == nil || !strings.Contains(err.Error(), `invalid af_xdp mode "zc"`) {
		t.Errorf("ParseMode(zc) error = %v", err)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{Interface: "eth0"}.withDefaults()
	want := Options{Interface: "eth0", Mode: ModeAuto, NumFrames: 4096, FrameSize: 4096,
		FillRingSize: 2048, CompletionRingSize: 2048, RxRingSize: 2048, TxRingSize: 2048, FillFrames: 2048}
	if o != want {
		t.Fatalf("defaults = %+v, want %+v", o, want)
	}
	if err := o.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		modify  func(*Options)
		wantErr string
	}{
		{"ok 2048 chunks", func(o *Options) { o.FrameSize = 2048 }, ""},
		{"ok headroom", func(o *Options) { o.Headroom = 3839 }, ""},
		{"ok busy poll", func(o *Options) { o.BusyPoll = BusyPoll{Prefer: true, Timeout: 20 * time.Microsecond, Budget: 64} }, ""},
		{"no interface", func(o *Options) { o.Interface = "" }, "interface name is empty"},
		{"bad mode", func(o *Options) { o.Mode = "fast" }, `invalid af_xdp mode "fast"`},
		{"frame not power of two", func(o *Options) { o.FrameSize = 3000 }, "invalid frame size 3000"},
		{"frame too small", func(o *Options) { o.FrameSize = 1024 }, "invalid frame size 1024"},
		{"frame above page", func(o *Options) { o.FrameSize = 8192 }, "invalid frame size 8192"},
		{"headroom too big", func(o *Options) { o.Headroom = 3840 }, "invalid headroom 3840"},
		{"too many frames", func(o *Options) { o.NumFrames = 1<<26 + 1 }, "invalid frame count"},
		{"fill ring", func(o *Options) { o.FillRingSize = 1000 }, "invalid fill ring size 1000"},
		{"completion ring", func(o *Options) { o.CompletionRingSize = 3 }, "invalid completion ring size 3"},
		{"rx ring", func(o *Options) { o.RxRingSize = 1 << 25 }, "invalid rx ring size"},
		{"tx ring", func(o *Options) { o.TxRingSize = 6 }, "invalid tx ring size 6"},
		{"ok fill depth", func(o *Options) { o.FillFrames = 68 }, ""},
		{"fill depth above ring", func(o *Options) { o.FillRingSize = 64; o.FillFrames = 65 }, "invalid fill depth 65"},
		{"fill depth above half the frames", func(o *Options) { o.NumFrames = 256; o.FillFrames = 129 }, "invalid fill depth 129"},
		{"busy poll timeout", func(o *Options) { o.BusyPoll.Timeout = -time.Microsecond }, "invalid busy-poll timeout"},
		{"busy poll budget", func(o *Options) { o.BusyPoll.Budget = 70000 }, "invalid busy-poll budget 70000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := Options{Interface: "eth0"}
			tt.modify(&o)
			err := o.withDefaults().validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestFillFramesFor(t *testing.T) {
	for _, tt := range []struct {
		inflight int
		want     uint32
	}{{-1, 0}, {0, 0}, {1, 68}, {64, 320}, {256, 1088}, {1024, 4160}} {
		if got := FillFramesFor(tt.inflight); got != tt.want {
			t.Errorf("FillFramesFor(%d) = %d, want %d", tt.inflight, got, tt.want)
		}
	}
}

// prefetch is a hint: it must accept any address, mapped or not, without
// faulting or changing memory.
func TestPrefetchNeverFaults(t *testing.T) {
	b := []byte{1, 2, 3}
	prefetch(unsafe.Pointer(&b[1]))
	prefetch(nil)
	prefetch(unsafe.Add(unsafe.Pointer(&b[0]), 1<<40)) // most likely unmapped
	if b[0] != 1 || b[1] != 2 || b[2] != 3 {
		t.Fatalf("prefetch changed memory: %v", b)
	}
}
