package caps

import (
	"os"
	"strings"
	"testing"
)

func TestRequire(t *testing.T) {
	set, err := Effective()
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 && set&(1<<NetAdmin) == 0 {
		t.Fatalf("root without CAP_NET_ADMIN? CapEff=%x", set)
	}
	// A capability number no process has: always missing.
	err = Require("the test", NetAdmin, Capability(63))
	if err == nil || !strings.Contains(err.Error(), "CAP_63") || !strings.Contains(err.Error(), "the test needs") {
		t.Fatalf("unexpected error %v", err)
	}
	if set&(1<<NetAdmin) != 0 && strings.Contains(err.Error(), "CAP_NET_ADMIN") {
		t.Fatalf("named a capability the process has: %v", err)
	}
}
