package testbed_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"os/exec"

	"github.com/stackgap/stackgap/internal/testbed"
)

// A program such as `stackgap demo`: build the testbed, remove it on Ctrl-C, run the reflector
// in B as a child process and the sender in A on sockets opened there.
func Example() {
	if removed, err := testbed.Sweep(testbed.DefaultPrefix); err == nil && len(removed) > 0 {
		fmt.Println("removed leftovers:", removed)
	}
	tb, err := testbed.New(testbed.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer tb.Close()
	defer tb.CloseOnSignal(context.Background())()

	reflector := exec.Command("stackgap-reflect", "--listen", netip.AddrPortFrom(tb.AddrB4, 9000).String())
	if err := tb.Start(testbed.B, reflector); err != nil {
		log.Fatal(err)
	}
	defer reflector.Process.Kill()

	var conn *net.UDPConn
	err = tb.Do(testbed.A, func() error {
		var err error
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(tb.AddrB4, 9000)))
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	// ... send probes on conn from any goroutine; it stays in namespace A.
}
