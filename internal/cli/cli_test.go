package cli

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseHostPort(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"198.18.0.2", "198.18.0.2:7878", true},
		{"198.18.0.2:9000", "198.18.0.2:9000", true},
		{"2001:2::2", "[2001:2::2]:7878", true},
		{"[2001:2::2]:9000", "[2001:2::2]:9000", true},
		{"[2001:2::2]", "[2001:2::2]:7878", true},
		{"localhost:9000", "127.0.0.1:9000", true},
		{"198.18.0.2:0", "", false},
		{"198.18.0.2:99999", "", false},
		{"", "", false},
		{"no-such-host.invalid", "", false},
	}
	for _, tt := range tests {
		got, err := ParseHostPort(tt.in, 7878)
		if (err == nil) != tt.ok {
			t.Errorf("ParseHostPort(%q) error = %v, want ok=%v", tt.in, err, tt.ok)
			continue
		}
		if tt.ok && got != netip.MustParseAddrPort(tt.want) {
			t.Errorf("ParseHostPort(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestReadSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if b, err := ReadSecret(write("ok", "s3cret\n", 0o600)); err != nil || string(b) != "s3cret" {
		t.Fatalf("ReadSecret = %q, %v", b, err)
	}
	for name, p := range map[string]string{
		"empty":    write("empty", "\n", 0o600),
		"readable": write("readable", "x", 0o644),
		"missing":  filepath.Join(dir, "missing"),
	} {
		if _, err := ReadSecret(p); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if b, err := ReadSecret(""); b != nil || err != nil {
		t.Fatalf("no file: %q %v", b, err)
	}
}

func TestParseFlags(t *testing.T) {
	newSet := func() (*flag.FlagSet, *int) {
		fs := flag.NewFlagSet("tool sub", flag.ContinueOnError)
		return fs, fs.Int("n", 1, "a number")
	}
	fs, n := newSet()
	if err := ParseFlags(fs, []string{"-n", "3", "rest"}); err != nil || *n != 3 || fs.Arg(0) != "rest" {
		t.Errorf("good flags: err %v, n %d, args %v", err, *n, fs.Args())
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"-x"}, "flag provided but not defined: -x ('tool sub -h' lists the flags)"},
		{[]string{"-n", "many"}, `invalid value "many" for flag -n: parse error ('tool sub -h' lists the flags)`},
		{[]string{"-n"}, "flag needs an argument: -n ('tool sub -h' lists the flags)"},
	} {
		fs, _ := newSet()
		var out strings.Builder
		fs.Usage = func() { out.WriteString("usage printed") }
		err := ParseFlags(fs, tt.args)
		if err == nil || err.Error() != tt.want || strings.Contains(err.Error(), "\n") || out.Len() > 0 {
			t.Errorf("%v: err %v, usage %q; want one line %q and no usage", tt.args, err, out.String(), tt.want)
		}
	}
	fs, _ = newSet()
	printed := false
	fs.Usage = func() { printed = true }
	if err := ParseFlags(fs, []string{"-h"}); !errors.Is(err, flag.ErrHelp) || !printed {
		t.Errorf("-h: err %v, usage printed %v; want flag.ErrHelp after the usage", err, printed)
	}
}
