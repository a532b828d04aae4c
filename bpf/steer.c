//go:build ignore

// steer.c: the XDP program of stackgap's AF_XDP path.
//
// It redirects only the probe flow of live sessions to the AF_XDP socket bound
// to the receiving queue and passes every other frame to the kernel untouched
// (control channel, ARP/ND, ICMP, SSH...). A redirected frame of a flow with
// FLOW_METADATA carries a struct meta in the XDP metadata area just in front
// of it; flows of sessions that take no stamps get none.
//
// Two variants share one object and one set of maps:
//   steer_hw  device-bound (BPF_F_XDP_DEV_BOUND_ONLY), driver mode only; reads
//             the NIC's RX timestamp with the bpf_xdp_metadata_rx_timestamp kfunc.
//   steer     for generic (SKB) mode, where metadata kfuncs cannot run;
//             hw_ts = 0, hw_err = -EOPNOTSUPP.

#include <linux/bpf.h>
#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define ETH_HLEN 14
#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88A8
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IP_MF_OFFSET 0x3FFF /* MF flag and fragment offset */
#define EOPNOTSUPP 95

#define PROBE_MAGIC 0x5347
#define PROBE_VERSION 1

/* STEER_META_MAGIC marks a struct meta written by this program. */
#define STEER_META_MAGIC 0x53474d31 /* "SGM1" */

/* Largest queue index an AF_XDP socket can be registered for, plus one. */
#define STEER_MAX_QUEUES 256

/* struct meta sits right before the frame (at data - 24). */
struct meta {
	__u64 xdp_ts;  /* bpf_ktime_get_tai_ns() when the probe was matched: CLOCK_TAI */
	__u64 hw_ts;   /* NIC RX timestamp (PHC ns), 0 if none */
	__s32 hw_err;  /* bpf_xdp_metadata_rx_timestamp result: 0, -ENODATA, -EOPNOTSUPP */
	__u32 magic;   /* STEER_META_MAGIC */
};

/* Makes clang emit BTF for struct meta, so bpf2go generates its Go twin. */
const struct meta *unused_meta __attribute__((unused));

/* struct flow identifies a probe flow: see flow_lookup. */
struct flow {
	__u8 ip_version; /* 4 or 6 */
	__u8 proto;      /* IPPROTO_UDP or IPPROTO_TCP */
	__u16 dst_port;  /* host byte order */
};

/* struct stats: per-CPU counters (map counters), see xdp.SteerStats. */
struct stats {
	__u64 redirected;  /* XDP_REDIRECT returned toward an XSK */
	__u64 passed;      /* XDP_PASS returned (everything not redirected) */
	__u64 no_socket;   /* live probe flow, but no XSK in the queue's slot (passed) */
	__u64 not_probe;   /* live UDP flow without the probe magic/version (passed) */
	__u64 meta_failed; /* redirected without metadata: bpf_xdp_adjust_meta failed */
	__u64 dropped;     /* live probe-flow frames dropped on purpose (config: drop_pct) */
};

/* struct settings: what user space tunes while the program runs. */
struct settings {
	__u32 drop_pct; /* share of live probe-flow frames to drop, percent (0 = none) */
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, STEER_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* enum flow_flags: a flow's FLOW_BITS bits in map flows. */
enum flow_flags {
	FLOW_LIVE = 1, /* redirect the flow's probes */
	/* Write struct meta in front of the flow's frames: the XDP-hook stamp
	 * (and with steer_hw the NIC's). A session that takes no stamps leaves
	 * it out: bpf_ktime_get_tai_ns alone costs tens of ns per frame. */
	FLOW_METADATA = 2,
	FLOW_BITS = 2,
	FLOWS_PER_WORD = 64 / FLOW_BITS,
	/* one slot per IP version (2) x protocol (2) x destination port */
	FLOW_WORDS = 2 * 2 * 65536 / FLOWS_PER_WORD,
};

/* Makes clang emit BTF for enum flow_flags, so bpf2go generates its Go twin. */
const enum flow_flags unused_flow_flags __attribute__((unused));

/* Every possible flow's flags, FLOW_BITS each, in 64-bit words (64 KiB): an
 * array lookup, which the verifier inlines, costs a few ns where a hash
 * lookup cost ~30 ns per frame on the path being measured. Slot of a flow:
 * (IPv6 ? 2 : 0) << 16 | (TCP ? 1 : 0) << 16 | destination port. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, FLOW_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} flows SEC(".maps");

/* flow_lookup returns the enum flow_flags of f (0: not live). */
static __always_inline __u32 flow_lookup(const struct flow *f)
{
	__u32 slot = f->dst_port;
	if (f->proto == IPPROTO_TCP)
		slot |= 1u << 16;
	if (f->ip_version == 6)
		slot |= 2u << 16;
	__u32 word = slot / FLOWS_PER_WORD;
	__u64 *bits = bpf_map_lookup_elem(&flows, &word);
	if (!bits)
		return 0;
	return (*bits >> ((slot % FLOWS_PER_WORD) * FLOW_BITS)) & ((1u << FLOW_BITS) - 1);
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stats);
} counters SEC(".maps");

/* One entry, written by xdp.(*Steering).SetDropPercent: emulated loss for
 * tests. nftables cannot drop AF_XDP traffic: XDP runs before it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct settings);
} config SEC(".maps");

extern int bpf_xdp_metadata_rx_timestamp(const struct xdp_md *ctx, __u64 *timestamp) __ksym;

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

enum steer_class {
	CLASS_OTHER,     /* not a live flow: pass */
	CLASS_NOT_PROBE, /* live UDP flow without the probe header: pass */
	CLASS_PROBE,     /* redirect */
};

/* classify parses Ethernet [+ one VLAN tag], IPv4/IPv6 and UDP/TCP, and
 * decides whether the frame belongs to a live probe flow; for a probe it
 * sets *flags to the flow's enum flow_flags. */
static __always_inline enum steer_class classify(struct xdp_md *ctx, __u32 *flags)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct flow key = {};
	void *l4;

	if (data + ETH_HLEN > data_end)
		return CLASS_OTHER;
	__be16 eth_proto = *(__be16 *)(data + 12);
	void *l3 = data + ETH_HLEN;
	if (eth_proto == bpf_htons(ETH_P_8021Q) || eth_proto == bpf_htons(ETH_P_8021AD)) {
		struct vlan_hdr *vlan = l3;
		if ((void *)(vlan + 1) > data_end)
			return CLASS_OTHER;
		eth_proto = vlan->proto;
		l3 = vlan + 1;
	}

	if (eth_proto == bpf_htons(ETH_P_IP)) {
		__u8 *ip = l3;
		if ((void *)(ip + 20) > data_end)
			return CLASS_OTHER;
		if ((ip[0] >> 4) != 4)
			return CLASS_OTHER;
		__u32 ihl = (ip[0] & 0x0f) * 4;
		if (ihl < 20)
			return CLASS_OTHER;
		if (*(__be16 *)(ip + 6) & bpf_htons(IP_MF_OFFSET))
			return CLASS_OTHER; /* any fragment */
		key.ip_version = 4;
		key.proto = ip[9];
		l4 = (void *)ip + ihl;
	} else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
		__u8 *ip6 = l3;
		if ((void *)(ip6 + 40) > data_end)
			return CLASS_OTHER;
		if ((ip6[0] >> 4) != 6)
			return CLASS_OTHER;
		key.ip_version = 6;
		key.proto = ip6[6]; /* next header: no extension headers */
		l4 = ip6 + 40;
	} else {
		return CLASS_OTHER;
	}

	if (key.proto == IPPROTO_UDP) {
		__u8 *udp = l4;
		/* UDP header plus magic and version */
		if ((void *)(udp + 8 + 3) > data_end)
			goto lookup_only;
		key.dst_port = bpf_ntohs(*(__be16 *)(udp + 2));
		__u32 live = flow_lookup(&key);
		if (!(live & FLOW_LIVE))
			return CLASS_OTHER;
		if (*(__be16 *)(udp + 8) != bpf_htons(PROBE_MAGIC) || udp[10] != PROBE_VERSION)
			return CLASS_NOT_PROBE;
		*flags = live;
		return CLASS_PROBE;
	lookup_only:
		/* too short for a probe; still tell a live flow from other traffic */
		if ((void *)(udp + 8) > data_end)
			return CLASS_OTHER;
		key.dst_port = bpf_ntohs(*(__be16 *)(udp + 2));
		return flow_lookup(&key) & FLOW_LIVE ? CLASS_NOT_PROBE : CLASS_OTHER;
	}
	if (key.proto == IPPROTO_TCP) {
		__u8 *tcp = l4;
		if ((void *)(tcp + 20) > data_end)
			return CLASS_OTHER;
		key.dst_port = bpf_ntohs(*(__be16 *)(tcp + 2));
		/* a userspace TCP endpoint needs every segment, SYN/ACK/FIN included */
		__u32 live = flow_lookup(&key);
		if (!(live & FLOW_LIVE))
			return CLASS_OTHER;
		*flags = live;
		return CLASS_PROBE;
	}
	return CLASS_OTHER;
}

/* write_meta puts struct meta in front of the frame; 1 on success. */
static __always_inline int write_meta(struct xdp_md *ctx, __u64 xdp_ts, __u64 hw_ts, __s32 hw_err)
{
	if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct meta)))
		return 0;
	struct meta *m = (void *)(long)ctx->data_meta;
	if ((void *)(m + 1) > (void *)(long)ctx->data)
		return 0;
	m->xdp_ts = xdp_ts;
	m->hw_ts = hw_ts;
	m->hw_err = hw_err;
	m->magic = STEER_META_MAGIC;
	return 1;
}

static __always_inline int steer_frame(struct xdp_md *ctx, const int hw)
{
	__u32 zero = 0;
	struct stats *st = bpf_map_lookup_elem(&counters, &zero);
	if (!st)
		return XDP_PASS; /* cannot happen: one-entry array */

	__u32 flags = 0;
	enum steer_class class = classify(ctx, &flags);
	if (class != CLASS_PROBE) {
		st->passed++;
		if (class == CLASS_NOT_PROBE)
			st->not_probe++;
		return XDP_PASS;
	}

	struct settings *set = bpf_map_lookup_elem(&config, &zero);
	if (set && set->drop_pct && bpf_get_prandom_u32() % 100 < set->drop_pct) {
		st->dropped++;
		return XDP_DROP;
	}

	int want_meta = flags & FLOW_METADATA;
	int meta_ok = 0;
	if (want_meta) {
		__u64 xdp_ts = bpf_ktime_get_tai_ns();
		__u64 hw_ts = 0;
		__s32 hw_err = -EOPNOTSUPP;
		if (hw)
			hw_err = bpf_xdp_metadata_rx_timestamp(ctx, &hw_ts);
		meta_ok = write_meta(ctx, xdp_ts, hw_ts, hw_err);
	}

	int action = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	if (action != XDP_REDIRECT) {
		/* no socket registered for this queue: the kernel gets the frame */
		st->passed++;
		st->no_socket++;
		return action;
	}
	st->redirected++;
	if (want_meta && !meta_ok)
		st->meta_failed++;
	return action;
}

SEC("xdp")
int steer(struct xdp_md *ctx)
{
	return steer_frame(ctx, 0);
}

SEC("xdp")
int steer_hw(struct xdp_md *ctx)
{
	return steer_frame(ctx, 1);
}

char __license[] SEC("license") = "Dual MIT/GPL";
