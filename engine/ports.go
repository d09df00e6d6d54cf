package engine

import (
	"context"
	"net/netip"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/policy"
)

// The interfaces in this file are the engine's seams to the kernel and to
// its helpers. Linux implementations live in engine/nfq (queues),
// engine/ipt (hooks) and conntrack/ctnl (conntrack); engine/enginetest has
// fakes, so every engine test runs without root.

// Action is the verdict the kernel gets for a queued packet.
type Action uint8

const (
	// NfDrop drops the packet (NF_DROP).
	NfDrop Action = iota
	// NfAccept ends the current table's hook for the packet (NF_ACCEPT).
	NfAccept
	// NfRepeat re-runs the current hook with a new packet mark (NF_REPEAT):
	// nfgate's chain then acts on the mark bits.
	NfRepeat
)

var actionNames = [...]string{"NF_DROP", "NF_ACCEPT", "NF_REPEAT"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "invalid"
}

// Netfilter hook numbers as reported by NFQUEUE.
const (
	HookPrerouting  uint8 = 0
	HookInput       uint8 = 1
	HookForward     uint8 = 2
	HookOutput      uint8 = 3
	HookPostrouting uint8 = 4
)

// Packet is one queued packet, converted by the queue adapter from the
// kernel's message. Payload is only valid during the handler call.
type Packet struct {
	ID    uint32
	Hook  uint8
	Mark  uint32
	InIf  uint32 // ifindex, 0 when none
	OutIf uint32
	// Truncated: the kernel copied only the first len(Payload) bytes of a
	// longer packet (the queue's copy range). A packet whose headers do not
	// fit is dropped on a policed interface (Stats.Truncated).
	Truncated bool
	Payload   []byte
}

// MaxBurst is the most packets a worker decides before it answers them.
// A queue may hand over longer bursts; the worker splits them.
const MaxBurst = 64

// Burst is what one read of a queue returned.
type Burst struct {
	// Packets in the kernel's order (ids increasing). They and their
	// payloads are only valid during the handler call.
	Packets []Packet
	// VerdictErrs counts verdict messages the kernel refused, reported
	// since the previous burst (a burst may carry only these).
	VerdictErrs int
}

// Verdict answers one queued packet. With Batch it answers every packet
// still waiting in the queue whose id is not after ID (NFQNL_MSG_VERDICT_BATCH):
// the engine sends one only when it knows every such packet was read and
// decided with this same action and mark.
type Verdict struct {
	ID     uint32
	Action Action
	Mark   uint32 // the full new packet mark (used with NfRepeat)
	Batch  bool
}

// Queue is one NFQUEUE, bound to the kernel before the engine gets it (so
// packets queued before the reader starts wait for it). Receive runs on one
// goroutine; SetVerdicts may be called from any goroutine (the watchdog
// answers for a hung handler).
type Queue interface {
	Num() uint16
	// Receive calls fn with each burst read until ctx ends or the queue
	// fails. fn answers every packet of a burst before it returns.
	Receive(ctx context.Context, fn func(*Burst)) error
	// SetVerdicts sends the answers in order, in one kernel call.
	SetVerdicts(vs []Verdict) error
}

// Decoder decodes a raw IP packet into p (classify.Decoder). Each queue
// reader gets its own; Decode must not allocate or fail.
type Decoder interface {
	Decode(b []byte, p *classify.Packet)
}

// Policy is what the engine evaluates. *policy.Program implements it.
type Policy interface {
	Bind(ifc policy.Interface) policy.Binding
	Untracked(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision
	PreDNAT(ep policy.EndpointID, pkt *classify.Packet) policy.Decision
	Local(ep policy.EndpointID, dir policy.Dir, pkt *classify.Packet) policy.Decision
	Forward(in, out policy.EndpointID, accepted bool, pkt *classify.Packet) policy.Decision
}

// Hooks installs nfgate's kernel rules.
type Hooks interface {
	// Apply installs or replaces every nfgate chain for both families
	// atomically per table family, then verifies them.
	Apply(p *HookPlan) error
	// Remove deletes everything nfgate owns.
	Remove() error
}

// Links is the live interface map.
type Links interface {
	Interfaces() []Iface
	Name(ifindex uint32) (string, bool)
	// Changed is signalled when interfaces or addresses change.
	Changed() <-chan struct{}
}

// FlowTuple identifies a flow by one packet as seen at a stage.
type FlowTuple struct {
	Family         uint8
	Proto          uint8
	Src, Dst       netip.Addr
	SrcPort        uint16
	DstPort        uint16
	ICMPType, Code uint8
}

// Conntrack changes kernel conntrack entries.
type Conntrack interface {
	// Recheck rewrites the connmark of every flow with any bit of owned
	// set: clear the bits of clear, set the bits of set. It returns how
	// many flows it changed.
	Recheck(owned, clear, set uint32) (int, error)
	// Cut deletes the flow a packet belongs to. The tuple is the packet's
	// as seen at a stage (pre- or post-DNAT, original direction).
	Cut(t FlowTuple) error
}

// DenyEntry is what the deny cache remembers about a denied flow.
type DenyEntry struct {
	Gen    uint64
	Stage  policy.Stage
	Reason policy.Reason
	Tier   int32
	Policy int32
	Rule   int32
}

// DenyScope is what a verdict depended on besides the packet's flow and
// the policy generation: the stage, the direction (untracked, input,
// output), the endpoints whose policy was evaluated (forward: in and out)
// and, for forward, the accept-mark an untracked or preDNAT Allow left. A
// cached denial answers only a packet of the same flow in the same scope, so
// a flow denied on one interface is never dropped unevaluated on another.
type DenyScope struct {
	Stage    policy.Stage
	Dir      policy.Dir
	Accepted bool
	In, Out  policy.EndpointID
}

// DenyCache remembers recently denied flows so a flood of their packets
// is dropped without evaluation. Implementations must not allocate.
type DenyCache interface {
	// Lookup returns the denial cached for pkt's flow in sc by generation
	// gen. It may answer "no" at once when nothing was cached for the stage
	// in gen (the common case: the packet path pays no hash then).
	Lookup(sc DenyScope, pkt *classify.Packet, gen uint64) (DenyEntry, bool)
	Add(sc DenyScope, pkt *classify.Packet, e DenyEntry)
	Purge()
}

// TraceRecord is one decision for the audit trace. Its strings are
// constants or long-lived names, so filling one allocates nothing.
type TraceRecord struct {
	Time     time.Time
	Gen      uint64
	Hash     string
	Stage    string
	In, Out  string
	Endpoint string
	Pkt      classify.Packet
	CT       string
	Verdict  string
	Tier     string
	Policy   string
	Rule     int32
	Reason   string
	Queue    uint16
	Logged   bool
	Note     string
}

// ReloadInfo is one reload attempt for the audit trace.
type ReloadInfo struct {
	Time      time.Time
	Gen       uint64
	Hash      string
	OK        bool
	Errors    []string
	Rechecked int
	Cut       int
	Files     []string
	// Warnings: the reload went live, degraded (re-check incomplete).
	Warnings []string
}

// Tracer receives trace records. Decision must not block or allocate; it
// copies the record and returns false when it had to drop it.
type Tracer interface {
	Decision(r *TraceRecord) bool
	Reload(ev ReloadInfo)
}
