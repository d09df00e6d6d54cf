package engine

import (
	"context"
	"time"

	"github.com/nfgate/nfgate/engine/trace"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/dtree"
)

// Deny regions in the kernel (issue 14). A dropped first packet frees its
// conntrack entry, so every packet of a denied new-flow flood comes back to
// the queue. When the engine denies a NEW packet at the preDNAT, input or
// forward stage, the installer asks the compiled policy for a box of packet
// space around it on which that stage's decision is the same Deny
// (Program.RegionIn), cut to what the kernel set can express, and installs
// it with a timeout into a set the kernel consults for NEW packets of that
// stage and interface(s) before nfgate's queue (engine/kset: an nf_tables
// table of its own). Later packets in the box are dropped (or rejected) in
// the kernel. The worker only offers the packet to the installer over a
// bounded channel; regions are computed and installed off the packet path.
//
// Correctness: an element is installed only when the policy proves every
// packet in it gets the same Deny at that stage, under the conditions the
// kernel rule checks (ct state new, none of nfgate's decided, accept or
// re-check bits, the packet's own in/out interface); every reload and every
// change of the interface bindings removes all elements before the new
// snapshot goes live, and no element of an older snapshot is installed
// after that (regionMgr.epoch).

// RegionKind says which kernel set an element belongs to: the packet kinds
// of policy.PacketSpace that the kernel can tell apart.
type RegionKind uint8

const (
	// RegionPorts: TCP, UDP, SCTP and UDP-Lite, with source and
	// destination port ranges (one protocol per element).
	RegionPorts RegionKind = iota
	// RegionICMP: ICMP (IPv4) or ICMPv6 (IPv6), with type and code ranges
	// (nft's transport-header ports of an ICMP packet are its type, code
	// and checksum bytes, so ICMP has its own set).
	RegionICMP
	// RegionOther: every other protocol (never TCP, UDP, SCTP, UDP-Lite,
	// ICMP or ICMPv6, in either family), by protocol range only.
	RegionOther
	numRegionKinds
)

var regionKindNames = [...]string{"ports", "icmp", "other"}

func (k RegionKind) String() string {
	if int(k) < len(regionKindNames) {
		return regionKindNames[k]
	}
	return "invalid"
}

// RegionElem is one element of a kernel deny set: a box of one stage's
// packets of one family and kind, arriving on InIf (and, for forward,
// leaving on OutIf). Ranges are inclusive. It is comparable: the installer
// keys its bookkeeping on it, and RegionSets.Counters reports elements in
// this form.
type RegionElem struct {
	Stage policy.Stage // StagePreDNAT, StageInput or StageForward
	Fam   uint8        // 4 or 6
	Kind  RegionKind
	InIf  uint32
	OutIf uint32 // forward only; 0 for the other stages
	// Addresses as numbers (IPv4 in the low 32 bits).
	Src, Dst [2]dtree.U128
	Proto    [2]uint8
	// RegionPorts: source (A) and destination (B) port ranges; RegionICMP:
	// type (A) and code (B) ranges within 0-255; RegionOther: unused (zero).
	A, B [2]uint16
}

// RegionSpec is what the kernel's region chains are rendered from.
type RegionSpec struct {
	Marks Marks
	// Reject: the deny action is REJECT; input and forward elements reject
	// (ICMP port unreachable, as iptables' REJECT), preDNAT ones drop.
	Reject bool
	// FailsafeIn: inbound failsafe ports. The preDNAT and input chains
	// return before any set lookup for them (the installer never makes an
	// element holding one: this is a second line).
	FailsafeIn []policy.ProtoPort
	// Size bounds each set's elements.
	Size int
}

// RegionSets is the kernel side of the deny regions: engine/kset on Linux,
// enginetest.RegionSets in tests.
type RegionSets interface {
	// Reset replaces nfgate's region table with one whose sets are empty
	// and whose chains are rendered from spec, in one transaction (all or
	// nothing).
	Reset(spec *RegionSpec) error
	// Add installs els, each for timeout, in one transaction: on error
	// none was added.
	Add(els []RegionElem, timeout time.Duration) error
	// Delete removes els in one transaction (elements already gone are
	// not an error).
	Delete(els []RegionElem) error
	// Counters calls fn for every element the kernel holds, with the
	// packets and bytes it dropped.
	Counters(fn func(el RegionElem, packets, bytes uint64)) error
	// Drift describes how the kernel's table differs from the one the last
	// Reset made ("" when it does not, or Reset never ran).
	Drift() (string, error)
	// Changes is signalled when the kernel's table may have been changed
	// by someone else (nil when the backend cannot tell).
	Changes(ctx context.Context) <-chan struct{}
	// Remove deletes the table.
	Remove() error
}

// regioner is the policy side: *policy.Program.
type regioner interface {
	RegionIn(c policy.StageCall, in policy.Box, k *dtree.Key) (policy.Decision, policy.Box)
}

// Default region settings (engine.denyRegionSize, engine.denyRegionTTL).
const (
	DefaultRegionSize = 4096
	DefaultRegionTTL  = 10 * time.Second
)

// Region writes a deny region's trace line.
func (t traceAdapter) Region(ev RegionInfo) {
	t.w.Region(trace.RegionEvent{Installed: ev.Installed, Ended: ev.Ended, End: ev.End, Gen: ev.Gen, Hash: ev.Hash,
		Stage: ev.Stage, In: ev.In, Out: ev.Out, Set: ev.Set, Box: ev.Box, Verdict: ev.Verdict, Endpoint: ev.Endpoint,
		Tier: ev.Tier, Policy: ev.Policy, Rule: ev.Rule, Reason: ev.Reason, Packets: ev.Packets, Bytes: ev.Bytes})
}
