package testutil

import "net"

// ServeEcho runs an echo service (RFC 862) on ln and pc until they are
// closed: every TCP connection gets back the bytes it sends, every datagram
// goes back to its source. Either may be nil. It reads and writes in a loop,
// not with io.Copy, which would splice through a pipe that outlives the test
// and trips CheckNoLeaks.
func ServeEcho(ln net.Listener, pc net.PacketConn) {
	if pc != nil {
		go func() {
			buf := make([]byte, 65536)
			for {
				n, from, err := pc.ReadFrom(buf)
				if err != nil {
					return
				}
				pc.WriteTo(buf[:n], from)
			}
		}()
	}
	if ln != nil {
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				go echoStream(c)
			}
		}()
	}
}

func echoStream(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 65536)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}
