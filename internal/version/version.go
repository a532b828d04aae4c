// Package version holds the stackgap release version and source commit, both
// stamped into the binaries at link time by the Makefile:
//
//	go build -ldflags "\
//	  -X github.com/stackgap/stackgap/internal/version.Version=v0.1.0 \
//	  -X github.com/stackgap/stackgap/internal/version.Commit=$(git rev-parse --short HEAD)" ./cmd/...
//
// A binary built without those flags (go build, go test, go run) reports
// Version "dev" and Commit "unknown".
package version

// Version is the release version, set with
// -X github.com/stackgap/stackgap/internal/version.Version=<version>.
// The linker can only set package-level string variables, so these two are
// variables; nothing in the program assigns them.
var Version = "dev"

// Commit is the source commit the binary was built from, set with
// -X github.com/stackgap/stackgap/internal/version.Commit=<commit>.
var Commit = "unknown"

// String returns the version and commit in one line, e.g. "v0.1.0 (commit 1a2b3c4)".
func String() string {
	return Version + " (commit " + Commit + ")"
}
