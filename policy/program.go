package policy

import "net/netip"

// Stage is where in the kernel a packet is being evaluated (spec §2).
type Stage uint8

const (
	// StageUntracked: raw PREROUTING (ingress) / raw OUTPUT (egress); doNotTrack policy; every packet.
	StageUntracked Stage = iota
	// StagePreDNAT: mangle PREROUTING, before DNAT, ingress only, NEW packets.
	StagePreDNAT
	// StageInput: filter INPUT, normal ingress policy of the in-interface's endpoint.
	StageInput
	// StageOutput: filter OUTPUT (not DNAT'd) or mangle POSTROUTING (DNAT'd local traffic), normal egress policy.
	StageOutput
	// StageForward: filter FORWARD, applyOnForward ingress of the in-interface's endpoint then egress of the out-interface's.
	StageForward
)

var stageNames = [...]string{"untracked", "preDNAT", "input", "output", "forward"}

func (s Stage) String() string {
	if int(s) < len(stageNames) {
		return stageNames[s]
	}
	return "invalid"
}

// Verdict is what nfgate does with a packet at one stage.
type Verdict uint8

const (
	// None: nfgate gives no verdict; the host's own rules after nfgate's hook decide.
	None Verdict = iota
	Accept
	// Drop: a Calico deny. Settings.DenyAction says whether the kernel drops or rejects.
	Drop
)

var verdictNames = [...]string{"NONE", "ACCEPT", "DROP"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "invalid"
}

// Reason says why a stage gave its verdict. Reasons are constants: the hot
// path never formats strings.
type Reason uint8

const (
	ReasonRule                Reason = iota // a policy rule (Decision.Tier/Policy/Rule)
	ReasonProfile                           // a profile rule (Decision.Policy is the profile index)
	ReasonFailsafe                          // a failsafe port
	ReasonEndOfTier                         // no policy in the tier allowed or passed
	ReasonNoProfile                         // tiers returned, no profile decided
	ReasonDefaultAllowForward               // endpoint has no applyOnForward policy at all
	ReasonNotPoliced                        // no host endpoint governs the interface for this stage
	ReasonNoMatch                           // stage has policy but nothing matched and it has no default drop
	ReasonConntrack                         // ESTABLISHED/RELATED accept or INVALID drop
	ReasonEarlierStage                      // allowed by untracked or preDNAT policy (accept-mark)
	ReasonMalformed                         // packet could not be decoded far enough to evaluate
	// ReasonUnknownWorkload: to the host from, or forwarded from or to, an
	// interface matching interfacePrefix. nfgate knows no workload
	// endpoints, so to Felix it is an unknown workload interface, whose
	// dispatch drops every packet ("Unknown interface").
	ReasonUnknownWorkload
	// ReasonWorkloadICMPv6: ICMPv6 multicast listener, router solicitation
	// or neighbour messages (types 130-133, 135, 136) from a workload
	// interface to the host, which Felix accepts before the workload
	// dispatch (rules/static.go ICMPv6Filter).
	ReasonWorkloadICMPv6
	// ReasonCutFlow: a new packet, in either direction, of a flow a
	// reload's re-check cut (nfgate extension; engine/cutmem.go).
	ReasonCutFlow
)

var reasonNames = [...]string{"rule", "profile", "failsafe", "end-of-tier", "no-profile",
	"default-allow-forward", "not-policed", "no-match", "conntrack", "earlier-stage", "malformed", "unknown-workload-interface",
	"workload-icmpv6", "cut-flow"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "invalid"
}

// NoIndex marks an unset index in a Decision.
const NoIndex int32 = -1

// EndpointID identifies a host endpoint in a Program (index into Config.HostEndpoints); NoEndpoint when none.
type EndpointID int32

const NoEndpoint EndpointID = -1

// Decision is the outcome of one stage. It is a small value; Program.Describe
// turns the indexes into names for traces.
type Decision struct {
	Verdict  Verdict
	Reason   Reason
	Endpoint EndpointID // the endpoint whose chain decided (for forward: in or out)
	Tier     int32      // index into Program tiers, or NoIndex
	Policy   int32      // index into Config.Policies (or Profiles for ReasonProfile), or NoIndex
	Rule     int32      // rule index within the policy's direction, or NoIndex
	Dir      Dir        // direction of the deciding rule's list (0 when no rule decided)
	// AcceptMark: stage accepted (untracked/preDNAT Allow, forward accept-mark).
	AcceptMark bool
	// Logged: a Log rule matched on the way.
	Logged bool
}

// Interface is a host interface as seen when binding endpoints.
type Interface struct {
	Name  string
	Addrs []netip.Addr
}

// Binding is which endpoint governs an interface at each stage (spec §1.1 dispatch table).
type Binding struct {
	Untracked EndpointID // named HEP with >=1 doNotTrack policy
	PreDNAT   EndpointID // named HEP with >=1 preDNAT policy, else * HEP with >=1
	Filter    EndpointID // named HEP, else * HEP; NoEndpoint when not policed
	// Workload: the interface matches InterfacePrefix: never a host
	// endpoint's, and (no workload endpoint being known) Felix drops what
	// it sends to the host and what is forwarded from or to it.
	Workload bool
	// ForwardIn is the endpoint whose applyOnForward ingress chain polices
	// traffic forwarded from this interface (Forward's in argument). It equals
	// Filter, except on a workload interface, where it is the * HEP (spec §2.3).
	ForwardIn EndpointID
}

// NoBinding is the binding of an interface no endpoint governs. Use it
// rather than a Binding literal: the zero EndpointID is the first endpoint.
func NoBinding() Binding {
	return Binding{Untracked: NoEndpoint, PreDNAT: NoEndpoint, Filter: NoEndpoint, ForwardIn: NoEndpoint}
}

// Dir is a traffic direction relative to an endpoint.
type Dir = PolicyType
