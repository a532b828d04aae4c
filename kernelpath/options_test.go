package kernelpath

import (
	"strings"
	"testing"
	"time"

	"github.com/stackgap/stackgap/bench"
)

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      Options
		want    Options
		wantErr string
	}{
		{
			name: "defaults",
			in:   Options{Transport: UDP},
			want: Options{Transport: UDP, Wait: bench.WaitBlock, ConnectTimeout: DefaultConnectTimeout},
		},
		{
			name: "everything set",
			in: Options{Transport: TCP, Wait: bench.WaitSpin, BusyPoll: 50 * time.Microsecond, Timestamping: true,
				HardwareTimestamps: true, Device: "eth0", ConnectTimeout: time.Second},
			want: Options{Transport: TCP, Wait: bench.WaitSpin, BusyPoll: 50 * time.Microsecond, Timestamping: true,
				HardwareTimestamps: true, Device: "eth0", ConnectTimeout: time.Second},
		},
		{name: "no transport", in: Options{}, wantErr: `transport "" not supported`},
		{name: "unknown transport", in: Options{Transport: "sctp"}, wantErr: `transport "sctp" not supported`},
		{name: "poll wait", in: Options{Transport: UDP, Wait: bench.WaitPoll}, wantErr: `wait strategy "poll" not supported`},
		{name: "negative busy poll", in: Options{Transport: UDP, BusyPoll: -time.Microsecond}, wantErr: "busy-poll time -1µs invalid"},
		{name: "sub-microsecond busy poll", in: Options{Transport: UDP, BusyPoll: 1500 * time.Nanosecond}, wantErr: "busy-poll time 1.5µs invalid"},
		{name: "hardware without software", in: Options{Transport: UDP, HardwareTimestamps: true}, wantErr: "hardware timestamps need Timestamping"},
		{name: "long device name", in: Options{Transport: UDP, Device: "a-very-long-ifname"}, wantErr: `device name "a-very-long-ifname" longer than 15 bytes`},
		{name: "negative connect timeout", in: Options{Transport: TCP, ConnectTimeout: -time.Second}, wantErr: "connect timeout -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.in.validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("unexpected options (-want +got):\n-%+v\n+%+v", tt.want, got)
			}
		})
	}
}
