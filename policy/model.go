// Package policy holds nfgate's model of Calico host-endpoint policy
// (HostEndpoint, GlobalNetworkPolicy, GlobalNetworkSet, Profile, Tier and the
// gateway's own settings), and compiles it into an immutable Program that
// gives Calico's verdict for a packet at each stage.
//
// The model is plain data with no behaviour of its own; policy/config fills
// it from TOML and Calico v3 YAML and validates it. See
// docs/semantics.md for how each field maps to Calico.
package policy

import (
	"net/netip"
	"regexp"

	"github.com/nfgate/nfgate/policy/selector"
)

// Pos is where a resource or field was defined, for errors, traces and check output.
type Pos struct {
	File string
	Line int
	Col  int
}

// Action is a rule action.
type Action uint8

const (
	Allow Action = iota + 1
	Deny
	Log
	Pass
)

var actionNames = [...]string{"", "Allow", "Deny", "Log", "Pass"}

func (a Action) String() string {
	if int(a) < len(actionNames) && a != 0 {
		return actionNames[a]
	}
	return "invalid"
}

// PolicyType is a direction a policy applies to.
type PolicyType uint8

const (
	Ingress PolicyType = iota + 1
	Egress
)

func (t PolicyType) String() string {
	switch t {
	case Ingress:
		return "Ingress"
	case Egress:
		return "Egress"
	}
	return "invalid"
}

// Protocol is a rule's protocol or notProtocol.
type Protocol struct {
	Num uint8 // 1-255
	// Named is true when the protocol was written as a name (TCP, ICMP, ...).
	// Calico infers ipVersion only from the names ICMP and ICMPv6, not from 1/58.
	Named bool
}

// ICMPMatch is a rule's icmp or notICMP field. Code is only meaningful with HasCode.
type ICMPMatch struct {
	Type    uint8
	HasType bool
	Code    uint8
	HasCode bool
}

// Port is one entry of ports/notPorts: a number, an inclusive range, or a named port.
type Port struct {
	Min, Max uint16 // Min == Max for a single port; both 0 for a named port
	Name     string // named port (from HostEndpoint spec.ports)
}

// EntityRule is a rule's source or destination. All its fields are ANDed,
// a field and its negation included (ports and notPorts, nets and notNets).
type EntityRule struct {
	Nets        []netip.Prefix
	NotNets     []netip.Prefix
	Selector    *selector.Selector // nil when unset
	NotSelector *selector.Selector
	// NamespaceSelector and ServiceAccounts narrow the positive selector the
	// way Calico's datastore conversion does (EndpointSelector): host
	// endpoints and network sets carry no namespace or service account
	// labels, so a positive clause selects none of them and a negated one
	// selects them all; global() selects what has no
	// projectcalico.org/namespace label.
	NamespaceSelector *selector.Selector
	ServiceAccounts   *ServiceAccountMatch
	// Services names a Kubernetes service. Felix matches it against the
	// service's endpoints, which a standalone gateway does not know: the
	// rule never matches.
	Services *ServiceMatch
	Ports    []Port
	NotPorts []Port
}

// ServiceMatch is an entity rule's services field.
type ServiceMatch struct {
	Name      string
	Namespace string
}

// ServiceAccountMatch is an entity rule's serviceAccounts: names and a
// selector over service account labels, ANDed.
type ServiceAccountMatch struct {
	Names    []string
	Selector *selector.Selector // nil when unset
}

// Rule is one ingress or egress rule.
type Rule struct {
	Action      Action
	IPVersion   uint8 // 0 (any), 4 or 6
	Protocol    *Protocol
	NotProtocol *Protocol
	ICMP        *ICMPMatch
	NotICMP     *ICMPMatch
	Source      EntityRule
	Destination EntityRule
	// HTTP: the rule has an http match, which Calico's iptables dataplane
	// does not enforce; the rule acts on its other fields.
	HTTP bool
	Pos  Pos
}

// GlobalNetworkPolicy is Calico's GlobalNetworkPolicy, reduced to the fields
// that mean something on a standalone gateway.
type GlobalNetworkPolicy struct {
	Name  string
	Tier  string   // "" means "default"
	Order *float64 // nil sorts last
	// Selector is the selector Felix evaluates: spec.selector combined with
	// namespaceSelector and serviceAccountSelector (PolicySelector).
	Selector       *selector.Selector
	Types          []PolicyType // after Calico's defaulting
	Ingress        []Rule
	Egress         []Rule
	ApplyOnForward bool
	PreDNAT        bool
	DoNotTrack     bool
	// NamespaceSelector and ServiceAccountSelector as written ("" when
	// unset); Selector already includes them.
	NamespaceSelector      string
	ServiceAccountSelector string
	// Staged: a StagedGlobalNetworkPolicy (stagedAction Set, Learn or
	// Ignore). Felix keeps it in the endpoint's tiers, so it counts wherever
	// the presence of policy matters (a forward chain's default allow, which
	// endpoint's pre-DNAT or raw chain an interface gets), but never renders
	// its rules, and a tier whose policies in a direction are all staged has
	// no end-of-tier drop in that direction (felix/rules/endpoints.go).
	Staged bool
	Pos    Pos
}

// HasType reports whether the policy applies in direction t.
func (p *GlobalNetworkPolicy) HasType(t PolicyType) bool {
	for _, x := range p.Types {
		if x == t {
			return true
		}
	}
	return false
}

// EndpointPort is a named port declared by a HostEndpoint.
type EndpointPort struct {
	Name     string
	Protocol uint8 // TCP, UDP or SCTP
	Port     uint16
}

// HostEndpoint is Calico's HostEndpoint.
type HostEndpoint struct {
	Name          string
	Labels        map[string]string
	InterfaceName string // an interface name, "*" for all interfaces, or "" (match by ExpectedIPs)
	Node          string
	ExpectedIPs   []netip.Addr
	Profiles      []string
	Ports         []EndpointPort
	Pos           Pos
}

// GlobalNetworkSet is a labelled set of networks that rule selectors can
// match: a GlobalNetworkSet, or with a Namespace a (namespaced) NetworkSet,
// which selectors see with the labels NetworkSetLabels gives it.
type GlobalNetworkSet struct {
	Name      string
	Namespace string // "" for a GlobalNetworkSet
	Labels    map[string]string
	Nets      []netip.Prefix
	Pos       Pos
}

// Profile supplies labels to host endpoints that list it, and rules that
// normal (local) chains evaluate after all tiers.
type Profile struct {
	Name          string
	LabelsToApply map[string]string
	Ingress       []Rule
	Egress        []Rule
	// Missing: a host endpoint names this profile but it is not defined.
	// Felix gives such a profile one Deny rule in each direction
	// (active_rules_calculator.go DummyDropRules); Compile adds it.
	Missing bool
	Pos     Pos
}

// TierDefault is a tier's defaultAction.
type TierDefault uint8

const (
	TierDeny TierDefault = iota // Calico's default
	TierPass
)

// DefaultTierOrder is the order Calico's client gives a tier written
// without one (and the default tier's order).
const DefaultTierOrder = 1000000.0

// Tier groups policies; tiers are evaluated in order.
type Tier struct {
	Name          string
	Order         *float64
	DefaultAction TierDefault
	Pos           Pos
}

// ProtoPort is one failsafe entry: protocol, port and an optional network.
type ProtoPort struct {
	Protocol uint8        // TCP or UDP
	Net      netip.Prefix // invalid (zero) when unset: both families
	Port     uint16
}

// DenyAction is what a Deny does to the packet.
type DenyAction uint8

const (
	DenyDrop DenyAction = iota
	DenyReject
)

// Settings are the gateway's own Felix-equivalent settings.
type Settings struct {
	NodeName         string
	InterfacePrefix  []string // workload interface prefixes; default ["cali"]
	FailsafeInbound  []ProtoPort
	FailsafeOutbound []ProtoPort
	DenyAction       DenyAction
	// DefaultEndpointToHostAction (Calico default Drop) is what Felix does
	// with workload-to-host traffic after a known workload endpoint's chain.
	// nfgate knows no workload endpoints, and Felix drops an unknown
	// workload interface's traffic before this action: it never decides a
	// verdict here (loaded and validated as Felix does).
	DefaultEndpointToHostAction Action
	// DisableConntrackInvalidCheck removes the INVALID drops (Felix knob).
	DisableConntrackInvalidCheck bool
	// InterfaceExclude are the interfaces Felix does not track (Felix
	// InterfaceExclude; the loader's default is kube-ipvs0): no named host
	// endpoint governs them, by name or by expectedIPs. A "*" endpoint
	// still does, since Felix's catch-all dispatch has no interface match.
	InterfaceExclude []*regexp.Regexp
}

// Config is a complete, validated policy model for one gateway.
// HostEndpoints holds only endpoints whose Node is Settings.NodeName.
// RemoteHostEndpoints holds the other nodes' endpoints: they never govern an
// interface here, but rule selectors match their expectedIPs and named ports,
// as in Calico, where IP sets are built from every node's endpoints.
type Config struct {
	Settings            Settings
	Tiers               []Tier
	Policies            []GlobalNetworkPolicy
	HostEndpoints       []HostEndpoint
	RemoteHostEndpoints []HostEndpoint
	NetworkSets         []GlobalNetworkSet
	Profiles            []Profile
}

// Default failsafe ports (Felix config_params.go).
func DefaultFailsafeInbound() []ProtoPort {
	return []ProtoPort{
		{Protocol: 6, Port: 22}, {Protocol: 17, Port: 68}, {Protocol: 6, Port: 179},
		{Protocol: 6, Port: 2379}, {Protocol: 6, Port: 2380}, {Protocol: 6, Port: 5473},
		{Protocol: 6, Port: 6443}, {Protocol: 6, Port: 6666}, {Protocol: 6, Port: 6667},
	}
}

func DefaultFailsafeOutbound() []ProtoPort {
	return []ProtoPort{
		{Protocol: 17, Port: 53}, {Protocol: 17, Port: 67}, {Protocol: 6, Port: 179},
		{Protocol: 6, Port: 2379}, {Protocol: 6, Port: 2380}, {Protocol: 6, Port: 5473},
		{Protocol: 6, Port: 6443}, {Protocol: 6, Port: 6666}, {Protocol: 6, Port: 6667},
	}
}
