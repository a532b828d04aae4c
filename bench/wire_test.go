package bench

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"
)

// Golden vectors: the exact bytes of version-1 probes. A change here is a wire
// format change and needs a new ProbeVersion.
var goldenProbes = []struct {
	name      string
	size      int
	token     uint32
	seq       uint64
	reply     bool
	rxStack   uint32
	residence uint32
	hex       string
}{
	{
		name: "minimum request", size: 18, token: 0xdeadbeef, seq: 1,
		hex: "5347" + "01" + "00" + "deadbeef" + "0000000000000001" + "0012",
	},
	{
		name: "minimum reply has no room for stamps", size: 18, token: 0x01020304, seq: 0x0102030405060708, reply: true,
		hex: "5347" + "01" + "01" + "01020304" + "0102030405060708" + "0012",
	},
	{
		name: "in-band reply", size: 32, token: 0xcafef00d, seq: 42, reply: true, rxStack: 1500, residence: 2500,
		hex: "5347" + "01" + "03" + "cafef00d" + "000000000000002a" + "0020" + "000005dc" + "000009c4" + "000000000000",
	},
	{
		name: "padded request", size: 30, token: 7, seq: 1 << 40,
		hex: "5347" + "01" + "00" + "00000007" + "0000010000000000" + "001e" + "000000000000000000000000",
	},
}

func TestProbeGolden(t *testing.T) {
	for _, g := range goldenProbes {
		t.Run(g.name, func(t *testing.T) {
			b := make([]byte, g.size)
			for i := range b {
				b[i] = 0xff // MarshalProbe must clear padding
			}
			MarshalProbe(b, g.token, g.seq)
			if g.reply {
				MarkReply(b, g.rxStack, g.residence)
			}
			want, err := hex.DecodeString(g.hex)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(b, want) {
				t.Fatalf("unexpected bytes\nwant %x\ngot  %x", want, b)
			}
			p, err := ParseProbe(want)
			if err != nil {
				t.Fatalf("ParseProbe: %v", err)
			}
			if p.Token != g.token || p.Seq != g.seq || int(p.Length) != g.size {
				t.Fatalf("unexpected probe %+v", p)
			}
			if got := p.Flags&FlagReply != 0; got != g.reply {
				t.Fatalf("reply flag = %v, want %v", got, g.reply)
			}
			if g.reply && g.size >= InBandSize && (p.ReflectRxStack != g.rxStack || p.ReflectResidence != g.residence) {
				t.Fatalf("unexpected reflector stamps %d/%d", p.ReflectRxStack, p.ReflectResidence)
			}
		})
	}
}

func TestParseProbeErrors(t *testing.T) {
	valid := make([]byte, 20)
	MarshalProbe(valid, 1, 2)
	mutate := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), valid...)
		return f(b)
	}
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShortProbe},
		{"short", valid[:17], ErrShortProbe},
		{"magic", mutate(func(b []byte) []byte { b[0] = 0; return b }), ErrBadMagic},
		{"version", mutate(func(b []byte) []byte { b[2] = 9; return b }), ErrBadVersion},
		{"length too small", mutate(func(b []byte) []byte { b[17] = 3; return b }), ErrBadLength},
		{"truncated", valid[:19], ErrBadLength},
		{"trailing bytes", append(append([]byte(nil), valid...), 0), ErrBadLength},
		{"stamps flagged without room", mutate(func(b []byte) []byte { b[3] = FlagReflectStamps; return b }), ErrBadReflector},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseProbe(tt.in); !errors.Is(err, tt.want) {
				t.Fatalf("ParseProbe error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMarkReplyNeverGrows(t *testing.T) {
	for size := HeaderSize; size < 64; size++ {
		b := make([]byte, size)
		MarshalProbe(b, 1, 1)
		inBand := MarkReply(b, 1, 2)
		if len(b) != size {
			t.Fatalf("size %d: reply grew to %d", size, len(b))
		}
		if inBand != (size >= InBandSize) {
			t.Fatalf("size %d: in-band = %v", size, inBand)
		}
		if _, err := ParseProbe(b); err != nil {
			t.Fatalf("size %d: reply does not parse: %v", size, err)
		}
	}
}

func TestSetProbeWarmup(t *testing.T) {
	b := make([]byte, 30)
	MarshalProbe(b, 5, 6)
	SetProbeWarmup(b, true)
	p, err := ParseProbe(b)
	if err != nil || p.Flags != FlagWarmup {
		t.Fatalf("warm-up probe: flags %#x, %v", p.Flags, err)
	}
	MarkReply(b, 1, 2)
	if p, _ := ParseProbe(b); p.Flags != FlagWarmup|FlagReply|FlagReflectStamps {
		t.Fatalf("reply kept flags %#x", p.Flags)
	}
	SetProbeWarmup(b, false)
	if p, _ := ParseProbe(b); p.Flags&FlagWarmup != 0 || p.Seq != 6 {
		t.Fatalf("cleared flags %#x seq %d", p.Flags, p.Seq)
	}
}

func TestValidProbeSize(t *testing.T) {
	for _, tt := range []struct {
		n  int
		ok bool
	}{{17, false}, {18, true}, {1472, true}, {MaxProbeSize, true}, {MaxProbeSize + 1, false}, {-1, false}} {
		if err := ValidProbeSize(tt.n); (err == nil) != tt.ok {
			t.Errorf("ValidProbeSize(%d) = %v", tt.n, err)
		}
	}
}

func FuzzParseProbe(f *testing.F) {
	for _, g := range goldenProbes {
		b, _ := hex.DecodeString(g.hex)
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x53, 0x47, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProbe(b)
		if err != nil {
			return
		}
		if int(p.Length) != len(b) || len(b) < HeaderSize {
			t.Fatalf("accepted probe with length %d for %d bytes", p.Length, len(b))
		}
		// A parsed request turned into a reply keeps its size and still parses.
		c := append([]byte(nil), b...)
		MarkReply(c, 1, 2)
		q, err := ParseProbe(c)
		if err != nil || q.Seq != p.Seq || q.Token != p.Token || len(c) != len(b) {
			t.Fatalf("reply of a valid probe broke: %v %+v", err, q)
		}
	})
}
