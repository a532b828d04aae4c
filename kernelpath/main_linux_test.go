package kernelpath

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain fails the run when tests leave sockets open.
func TestMain(m *testing.M) {
	// The socket that keeps RX stamping on lives as long as the process.
	if err := EnableRxStamping(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	before := openSockets()
	code := m.Run()
	if after := openSockets(); code == 0 && after > before {
		fmt.Fprintf(os.Stderr, "kernelpath tests leaked %d sockets\n", after-before)
		code = 1
	}
	os.Exit(code)
}

func openSockets() int {
	fds, _ := filepath.Glob("/proc/self/fd/*")
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(fd); err == nil && strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	return n
}
