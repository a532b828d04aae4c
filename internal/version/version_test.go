package version

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestStringDefaults(t *testing.T) {
	if got, want := String(), "dev (commit unknown)"; got != want {
		t.Fatalf("unexpected String(): got %q, want %q", got, want)
	}
}

// TestLinkerFlags builds a tiny program with the documented -X paths and checks
// that both variables are stamped, so a renamed variable or package breaks here
// rather than silently in a release build.
func TestLinkerFlags(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("find the go tool: %v", err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "v")
	const pkg = "github.com/stackgap/stackgap/internal/version"
	ldflags := "-X " + pkg + ".Version=v9.8.7 -X " + pkg + ".Commit=abc1234"
	build := exec.Command(gobin, "build", "-ldflags", ldflags, "-o", bin, "./testdata/stamp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run stamped binary: %v", err)
	}
	if got, want := strings.TrimSpace(string(out)), "v9.8.7 (commit abc1234)"; got != want {
		t.Fatalf("unexpected stamped version: got %q, want %q", got, want)
	}
}
