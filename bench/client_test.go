package bench

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// timeoutError is a net.Error that timed out, as a dial past its deadline returns.
type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestDialHint(t *testing.T) {
	dialErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
	}
	for _, tt := range []struct {
		err  error
		want string
	}{
		{dialErr(syscall.ECONNREFUSED), "running there, on that port"},
		{dialErr(syscall.EHOSTUNREACH), "route to it"},
		{dialErr(syscall.ENETUNREACH), "route to it"},
		{&net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}}, "firewall"},
		{fmt.Errorf("something else"), "is stackgap-reflect running there?"},
	} {
		if got := dialHint(tt.err); !strings.Contains(got, tt.want) {
			t.Errorf("dialHint(%v) = %q, want it to say %q", tt.err, got, tt.want)
		}
	}
}
