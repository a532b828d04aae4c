package testbed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"sync"
)

// DropRule selects packets entering one side of a testbed and the share of them to drop.
type DropRule struct {
	// Proto is the transport protocol: "udp" or "tcp" (required).
	Proto string
	// DstPort matches the destination port (optional, 0 = any).
	DstPort uint16
	// SrcPort matches the source port (optional, 0 = any).
	SrcPort uint16
	// Percent of the matching packets to drop at random, 0 to 100.
	Percent int
	// Iface limits the rule to packets arriving on this interface (optional;
	// default every interface, loopback included).
	Iface string
}

func (r DropRule) validate() error {
	if r.Proto != "udp" && r.Proto != "tcp" {
		return fmt.Errorf("invalid protocol %q: want udp or tcp", r.Proto)
	}
	if strings.ContainsAny(r.Iface, "\"\\ ") || len(r.Iface) > 15 {
		return fmt.Errorf("invalid interface name %q", r.Iface)
	}
	if r.Percent < 0 || r.Percent > 100 {
		return fmt.Errorf("invalid drop share: %d%%", r.Percent)
	}
	return nil
}

// ruleset returns the nft script that creates table in the inet family, with one rule that drops
// r.Percent of the matching packets in prerouting (before conntrack) and counts what it drops.
func (r DropRule) ruleset(table string) string {
	match := r.Proto
	if r.DstPort != 0 {
		match += fmt.Sprintf(" dport %d", r.DstPort)
	}
	if r.SrcPort != 0 {
		if r.DstPort != 0 {
			match += " " + r.Proto
		}
		match += fmt.Sprintf(" sport %d", r.SrcPort)
	}
	if r.DstPort == 0 && r.SrcPort == 0 {
		match = "meta l4proto " + r.Proto
	}
	if r.Iface != "" {
		match = fmt.Sprintf("iifname %q %s", r.Iface, match)
	}
	if r.Percent < 100 { // numgen's range is 0-99, so "< 100" is rejected: 100% needs no numgen
		match += fmt.Sprintf(" numgen random mod 100 < %d", r.Percent)
	}
	return fmt.Sprintf(`table inet %s {
	chain prerouting {
		type filter hook prerouting priority raw; policy accept;
		%s counter drop
	}
}
`, table, match)
}

// NftDrop is an nftables rule, in its own table, that drops a share of the packets entering one
// side of a testbed. The kernel path sees it; AF_XDP traffic does not, as XDP runs before
// nftables on receive and AF_XDP transmit skips it.
type NftDrop struct {
	tb    *Testbed
	side  Side
	table string

	mu      sync.Mutex
	removed bool
}

// DropShare drops percent of the proto ("udp" or "tcp") packets to destination port dport that
// enter side. It needs the nft program.
func (tb *Testbed) DropShare(side Side, proto string, dport uint16, percent int) (*NftDrop, error) {
	return tb.Drop(side, DropRule{Proto: proto, DstPort: dport, Percent: percent})
}

// Drop installs rule for the packets that enter side. It needs the nft program. Several rules
// may coexist; each has its own table.
func (tb *Testbed) Drop(side Side, rule DropRule) (*NftDrop, error) {
	if err := checkSide(side); err != nil {
		return nil, fmt.Errorf("add drop rule: %w", err)
	}
	if err := rule.validate(); err != nil {
		return nil, fmt.Errorf("add drop rule: %w", err)
	}
	token, err := randomToken()
	if err != nil {
		return nil, fmt.Errorf("add drop rule: %w", err)
	}
	d := &NftDrop{tb: tb, side: side, table: "stackgap_drop_" + token}
	var stderr bytes.Buffer
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rule.ruleset(d.table))
	cmd.Stderr = &stderr
	if err := tb.Run(side, cmd); err != nil {
		return nil, fmt.Errorf("add drop rule in %s: %w: %s", tb.Namespace(side), err, strings.TrimSpace(stderr.String()))
	}
	return d, nil
}

// Table returns the name of the rule's nftables table (family inet), for `nft list table`.
func (d *NftDrop) Table() string { return d.table }

// Dropped returns how many packets the rule has dropped so far.
func (d *NftDrop) Dropped() (uint64, error) {
	out, err := d.tb.Output(d.side, "nft", "-j", "list", "table", "inet", d.table)
	if err != nil {
		return 0, fmt.Errorf("read drop counter: %w", err)
	}
	n, err := parseCounterPackets(out)
	if err != nil {
		return 0, fmt.Errorf("read drop counter of table %s: %w", d.table, err)
	}
	return n, nil
}

// Remove deletes the rule. It is idempotent, and a no-op once the testbed is closed.
func (d *NftDrop) Remove() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.removed {
		return nil
	}
	_, err := d.tb.Output(d.side, "nft", "delete", "table", "inet", d.table)
	if errors.Is(err, ErrClosed) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("remove drop rule: %w", err)
	}
	d.removed = true
	return nil
}

// parseCounterPackets returns the packet count of the single counter in the output of
// `nft -j list table …`.
func parseCounterPackets(listing []byte) (uint64, error) {
	var doc struct {
		Nftables []struct {
			Rule *struct {
				Expr []map[string]json.RawMessage `json:"expr"`
			} `json:"rule"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal(listing, &doc); err != nil {
		return 0, fmt.Errorf("parse nft JSON: %w", err)
	}
	var counts []uint64
	for _, obj := range doc.Nftables {
		if obj.Rule == nil {
			continue
		}
		for _, expr := range obj.Rule.Expr {
			raw, ok := expr["counter"]
			if !ok {
				continue
			}
			var counter struct {
				Packets *uint64 `json:"packets"`
			}
			if err := json.Unmarshal(raw, &counter); err != nil {
				return 0, fmt.Errorf("parse nft counter: %w", err)
			}
			if counter.Packets == nil {
				return 0, errors.New("nft counter has no packet count")
			}
			counts = append(counts, *counter.Packets)
		}
	}
	if len(counts) != 1 {
		return 0, fmt.Errorf("want one counter, found %d", len(counts))
	}
	return counts[0], nil
}
