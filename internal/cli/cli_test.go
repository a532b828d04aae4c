package cli

import (
	"net/netip"
	"os"
	"path/filepath"
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
