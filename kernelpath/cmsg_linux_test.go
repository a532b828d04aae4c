package kernelpath

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// cmsg encodes one control message the way the kernel's put_cmsg does.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, cmsgAlign(cmsgHeaderLen+len(data)))
	binary.NativeEndian.PutUint64(b[0:8], uint64(cmsgHeaderLen+len(data)))
	binary.NativeEndian.PutUint32(b[8:12], uint32(level))
	binary.NativeEndian.PutUint32(b[12:16], uint32(typ))
	copy(b[cmsgHeaderLen:], data)
	return b
}

func scmTimestamping(ns ...int64) []byte {
	b := make([]byte, 48)
	for i, v := range ns {
		binary.NativeEndian.PutUint64(b[16*i:], uint64(v/1e9))
		binary.NativeEndian.PutUint64(b[16*i+8:], uint64(v%1e9))
	}
	return b
}

func extendedErr(ee unix.SockExtendedErr, offender []byte) []byte {
	b := make([]byte, sizeofExtendedErr)
	binary.NativeEndian.PutUint32(b[0:4], ee.Errno)
	b[4], b[5], b[6], b[7] = ee.Origin, ee.Type, ee.Code, ee.Pad
	binary.NativeEndian.PutUint32(b[8:12], ee.Info)
	binary.NativeEndian.PutUint32(b[12:16], ee.Data)
	return append(b, offender...)
}

func sockaddr4(a netip.Addr) []byte {
	b := make([]byte, unix.SizeofSockaddrInet4)
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET)
	copy(b[4:8], a.AsSlice())
	return b
}

func sockaddr6(a netip.Addr) []byte {
	b := make([]byte, unix.SizeofSockaddrInet6)
	binary.NativeEndian.PutUint16(b[0:2], unix.AF_INET6)
	copy(b[8:24], a.AsSlice())
	return b
}

func TestParseControl(t *testing.T) {
	const sw, hw = 1_795_000_000_123_456_789, 42_000_000_007
	stampEE := unix.SockExtendedErr{Errno: uint32(unix.ENOMSG), Origin: unix.SO_EE_ORIGIN_TIMESTAMPING, Info: unix.SCM_TSTAMP_SND, Data: 17}
	icmpEE := unix.SockExtendedErr{Errno: uint32(unix.ECONNREFUSED), Origin: unix.SO_EE_ORIGIN_ICMP, Type: 3, Code: 3}
	icmp6EE := unix.SockExtendedErr{Errno: uint32(unix.ECONNREFUSED), Origin: unix.SO_EE_ORIGIN_ICMP6, Type: 1, Code: 4}
	reporter4, reporter6 := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("2001:2::1")
	rxq := binary.NativeEndian.AppendUint32(nil, 12)
	tests := []struct {
		name    string
		buf     []byte
		want    controlInfo
		wantErr bool
	}{
		{name: "empty"},
		{
			name: "rx software stamp",
			buf:  cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPING, scmTimestamping(sw, 0, 0)),
			want: controlInfo{stamps: [3]int64{sw, 0, 0}, hasStamps: true},
		},
		{
			name: "rx software and hardware, new layout",
			buf:  cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPING_NEW, scmTimestamping(sw, 0, hw)),
			want: controlInfo{stamps: [3]int64{sw, 0, hw}, hasStamps: true},
		},
		{
			name: "tx stamp from the error queue",
			buf: append(cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPING, scmTimestamping(sw, 0, 0)),
				cmsg(unix.SOL_IP, unix.IP_RECVERR, extendedErr(stampEE, sockaddr4(netip.IPv4Unspecified())[:2]))...),
			want: controlInfo{stamps: [3]int64{sw, 0, 0}, hasStamps: true, extErr: stampEE, hasExtErr: true},
		},
		{
			name: "icmp error with reporter",
			buf:  cmsg(unix.SOL_IP, unix.IP_RECVERR, extendedErr(icmpEE, sockaddr4(reporter4))),
			want: controlInfo{extErr: icmpEE, hasExtErr: true, offender: reporter4},
		},
		{
			name: "icmp6 error with reporter",
			buf:  cmsg(unix.SOL_IPV6, unix.IPV6_RECVERR, extendedErr(icmp6EE, sockaddr6(reporter6))),
			want: controlInfo{extErr: icmp6EE, hasExtErr: true, offender: reporter6},
		},
		{
			name: "receive-queue drops and an unknown message",
			buf:  append(cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, rxq), cmsg(unix.SOL_IP, unix.IP_TTL, []byte{64, 0, 0, 0})...),
			want: controlInfo{rxqDrops: 12, hasRxqDrops: true},
		},
		{
			name: "stamp cut short by MSG_CTRUNC",
			buf:  cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPING, scmTimestamping(sw)[:20]),
			want: controlInfo{short: 1},
		},
		{
			name: "trailing bytes shorter than a header",
			buf:  append(cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, rxq), 1, 2, 3),
			want: controlInfo{rxqDrops: 12, hasRxqDrops: true},
		},
		{
			name:    "length beyond the buffer",
			buf:     cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPING, scmTimestamping(sw))[:40],
			wantErr: true,
		},
		{
			name: "length below the header",
			buf: func() []byte {
				b := cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, rxq)
				binary.NativeEndian.PutUint64(b, 3)
				return b
			}(),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got controlInfo
			err := parseControl(tt.buf, &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error: %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("unexpected result (-want +got):\n-%+v\n+%+v", tt.want, got)
			}
		})
	}
}

func TestParseControlDoesNotAllocate(t *testing.T) {
	buf := append(cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPING, scmTimestamping(1e18, 0, 5)),
		cmsg(unix.SOL_IPV6, unix.IPV6_RECVERR, extendedErr(unix.SockExtendedErr{Origin: 3}, sockaddr6(netip.IPv6Loopback())))...)
	var ci controlInfo
	if allocs := testing.AllocsPerRun(100, func() { _ = parseControl(buf, &ci) }); allocs != 0 {
		t.Errorf("parseControl allocates %v times per call, want 0", allocs)
	}
}

// FuzzParseControl compares the message walk with x/sys/unix's parser and
// checks that parseControl never panics.
func FuzzParseControl(f *testing.F) {
	f.Add(cmsg(unix.SOL_SOCKET, unix.SO_TIMESTAMPING, scmTimestamping(1e18, 0, 5)))
	f.Add(append(cmsg(unix.SOL_IP, unix.IP_RECVERR, extendedErr(unix.SockExtendedErr{Origin: 2}, sockaddr4(netip.MustParseAddr("198.18.0.2")))),
		cmsg(unix.SOL_SOCKET, unix.SO_RXQ_OVFL, []byte{1, 0, 0, 0})...))
	f.Add(cmsg(unix.SOL_IPV6, unix.IPV6_RECVERR, extendedErr(unix.SockExtendedErr{Origin: 3}, sockaddr6(netip.IPv6Loopback())[:10])))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		var ci controlInfo
		err := parseControl(b, &ci)

		want, wantErr := unix.ParseSocketControlMessage(b)
		var got []unix.SocketControlMessage
		var walkErr error
		for rest := b; ; {
			level, typ, data, next, ok, err := nextControlMessage(rest)
			if err != nil {
				walkErr = err
				break
			}
			if !ok {
				break
			}
			got = append(got, unix.SocketControlMessage{Header: unix.Cmsghdr{Level: level, Type: typ}, Data: data})
			rest = next
		}
		if (walkErr != nil) != (wantErr != nil) || (err != nil) != (walkErr != nil) {
			t.Fatalf("errors differ: walk %v, parseControl %v, x/sys/unix %v", walkErr, err, wantErr)
		}
		if wantErr != nil {
			return
		}
		if len(got) != len(want) {
			t.Fatalf("%d messages, x/sys/unix found %d", len(got), len(want))
		}
		for i := range got {
			if got[i].Header.Level != want[i].Header.Level || got[i].Header.Type != want[i].Header.Type ||
				!bytes.Equal(got[i].Data, want[i].Data) {
				t.Fatalf("message %d differs from x/sys/unix's", i)
			}
		}
	})
}
