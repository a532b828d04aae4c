package kernelpath

import (
	"fmt"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The kernel stamps received packets in software only while some socket in
// the system asks for RX stamps: the first such socket turns a global static
// key on through a deferred work item (net/core/dev.c net_enable_timestamp),
// and the last one to close turns it off again. Packets that arrive before
// the work item ran carry no RX_SOFTWARE stamp; on a loaded machine that can
// be a whole short phase, and every phase that opens after the previous one
// closed would start that way again.
//
// rxStamping therefore holds one timestamping socket for the life of the
// process, and waits (up to a bound) until a datagram sent to itself over
// loopback comes back stamped. Its state is process-wide because the key it
// guards is system-wide.
var rxStamping struct {
	once sync.Once
	fd   int
	err  error
}

// rxStampingWait bounds how long EnableRxStamping waits for the key.
const rxStampingWait = 2 * time.Second

// EnableRxStamping makes sure the kernel stamps received packets before the
// first probe, holding one socket open for the rest of the process. Dial and
// Listen call it when timestamping is on; a TestMain that counts file
// descriptors calls it first. It returns an error only when the holding
// socket cannot be made; a network namespace without a usable loopback skips
// the check that stamping is on.
func EnableRxStamping() error {
	rxStamping.once.Do(func() {
		rxStamping.fd, rxStamping.err = holdRxStamping()
	})
	return rxStamping.err
}

func holdRxStamping() (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("enable RX timestamping: %w", os.NewSyscallError("socket", err))
	}
	flags := unix.SOF_TIMESTAMPING_SOFTWARE | unix.SOF_TIMESTAMPING_RX_SOFTWARE
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPING, flags); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("enable RX timestamping: %w", os.NewSyscallError("setsockopt SO_TIMESTAMPING", err))
	}
	// The socket's only job is to exist; the check below is best effort.
	if unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}) != nil {
		return fd, nil
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fd, nil
	}
	buf, oob := make([]byte, 8), make([]byte, controlBufferSize)
	var ci controlInfo
	for end := time.Now().Add(rxStampingWait); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if unix.Sendto(fd, buf, 0, sa) != nil {
			return fd, nil // no usable loopback here
		}
		for {
			_, oobn, _, _, err := unix.Recvmsg(fd, buf, oob, unix.MSG_DONTWAIT)
			if err != nil {
				break
			}
			if parseControl(oob[:oobn], &ci) == nil && ci.hasStamps && ci.stamps[0] != 0 {
				return fd, nil
			}
		}
	}
	return fd, nil
}
