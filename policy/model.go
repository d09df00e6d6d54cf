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

// EntityRule is a rule's source or destination.
type EntityRule struct {
	Nets              []netip.Prefix
	NotNets           []netip.Prefix
	Selector          *selector.Selector // nil when unset
	NotSelector       *selector.Selector
	NamespaceSelector *selector.Selector // only global() selects anything on a gateway
	Ports             []Port
	NotPorts          []Port
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
	Pos         Pos
}

// GlobalNetworkPolicy is Calico's GlobalNetworkPolicy, reduced to the fields
// that mean something on a standalone gateway.
type GlobalNetworkPolicy struct {
	Name           string
	Tier           string   // "" means "default"
	Order          *float64 // nil sorts last
	Selector       *selector.Selector
	Types          []PolicyType // after Calico's defaulting
	Ingress        []Rule
	Egress         []Rule
	ApplyOnForward bool
	PreDNAT        bool
	DoNotTrack     bool
	// NamespaceSelector or ServiceAccountSelector was set: Calico ANDs these
	// with clauses HEPs never match, so the policy selects no host endpoint.
	NeverSelectsHosts bool
	Pos               Pos
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

// GlobalNetworkSet is a labelled set of networks that rule selectors can match.
type GlobalNetworkSet struct {
	Name   string
	Labels map[string]string
	Nets   []netip.Prefix
	Pos    Pos
}

// Profile supplies labels to host endpoints that list it, and rules that
// normal (local) chains evaluate after all tiers.
type Profile struct {
	Name          string
	LabelsToApply map[string]string
	Ingress       []Rule
	Egress        []Rule
	Pos           Pos
}

// TierDefault is a tier's defaultAction.
type TierDefault uint8

const (
	TierDeny TierDefault = iota // Calico's default
	TierPass
)

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
	// DefaultEndpointToHostAction governs workload-interface -> host traffic
	// (Calico default Drop). Only matters if the gateway has InterfacePrefix interfaces.
	DefaultEndpointToHostAction Action
	// DisableConntrackInvalidCheck removes the INVALID drops (Felix knob).
	DisableConntrackInvalidCheck bool
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
