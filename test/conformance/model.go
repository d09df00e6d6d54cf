package conformance

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Calico v3 resources, as calicoctl applies them and nfgate includes them:
// only the fields the generator sets. Marshalled to YAML in field order.

type Meta struct {
	Name   string            `yaml:"name"`
	Labels map[string]string `yaml:"labels,omitempty"`
}

type doc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   Meta   `yaml:"metadata"`
	Spec       any    `yaml:"spec"`
}

// Proto is a protocol as a name ("TCP") or a number.
type Proto struct {
	Name string
	Num  int
}

func (p Proto) MarshalYAML() (any, error) {
	if p.Name != "" {
		return p.Name, nil
	}
	return p.Num, nil
}

func (p *Proto) UnmarshalYAML(n *yaml.Node) error {
	if v, err := strconv.Atoi(n.Value); err == nil && n.Tag != "!!str" {
		p.Num = v
		return nil
	}
	p.Name = n.Value
	return nil
}

// Number is the IP protocol number.
func (p Proto) Number() uint8 {
	if p.Name == "" {
		return uint8(p.Num)
	}
	switch p.Name {
	case "TCP":
		return protoTCP
	case "UDP":
		return protoUDP
	case "ICMP":
		return protoICMP
	case "ICMPv6":
		return protoICMPv6
	case "SCTP":
		return protoSCTP
	case "UDPLite":
		return protoUDPLite
	}
	if v, err := strconv.Atoi(p.Name); err == nil {
		return uint8(v)
	}
	return 0
}

// Port is a number, a range "lo:hi" or a name.
type Port struct {
	Lo, Hi int // Lo == Hi for a single port
	Name   string
}

func (p Port) MarshalYAML() (any, error) {
	switch {
	case p.Name != "":
		return p.Name, nil
	case p.Lo == p.Hi:
		return p.Lo, nil
	}
	return fmt.Sprintf("%d:%d", p.Lo, p.Hi), nil
}

func (p *Port) UnmarshalYAML(n *yaml.Node) error {
	if v, err := strconv.Atoi(n.Value); err == nil {
		p.Lo, p.Hi = v, v
		return nil
	}
	if a, b, ok := strings.Cut(n.Value, ":"); ok {
		x, e1 := strconv.Atoi(a)
		y, e2 := strconv.Atoi(b)
		if e1 == nil && e2 == nil {
			p.Lo, p.Hi = x, y
			return nil
		}
	}
	p.Name = n.Value
	return nil
}

type ICMPFields struct {
	Type *int `yaml:"type,omitempty"`
	Code *int `yaml:"code,omitempty"`
}

type ServiceAccounts struct {
	Names    []string `yaml:"names,omitempty"`
	Selector string   `yaml:"selector,omitempty"`
}

type Entity struct {
	Nets              []string         `yaml:"nets,omitempty"`
	NotNets           []string         `yaml:"notNets,omitempty"`
	Selector          string           `yaml:"selector,omitempty"`
	NotSelector       string           `yaml:"notSelector,omitempty"`
	NamespaceSelector string           `yaml:"namespaceSelector,omitempty"`
	Ports             []Port           `yaml:"ports,omitempty"`
	NotPorts          []Port           `yaml:"notPorts,omitempty"`
	ServiceAccounts   *ServiceAccounts `yaml:"serviceAccounts,omitempty"`
}

func (e *Entity) empty() bool {
	return e == nil || (len(e.Nets) == 0 && len(e.NotNets) == 0 && e.Selector == "" && e.NotSelector == "" &&
		e.NamespaceSelector == "" && len(e.Ports) == 0 && len(e.NotPorts) == 0 && e.ServiceAccounts == nil)
}

type HTTPMatch struct {
	Methods []string `yaml:"methods,omitempty"`
}

type RuleMeta struct {
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

type Rule struct {
	Action      string      `yaml:"action"`
	Protocol    *Proto      `yaml:"protocol,omitempty"`
	NotProtocol *Proto      `yaml:"notProtocol,omitempty"`
	IPVersion   *int        `yaml:"ipVersion,omitempty"`
	ICMP        *ICMPFields `yaml:"icmp,omitempty"`
	NotICMP     *ICMPFields `yaml:"notICMP,omitempty"`
	Source      *Entity     `yaml:"source,omitempty"`
	Destination *Entity     `yaml:"destination,omitempty"`
	HTTP        *HTTPMatch  `yaml:"http,omitempty"`
	Metadata    *RuleMeta   `yaml:"metadata,omitempty"`
}

type GNPSpec struct {
	Tier                   string   `yaml:"tier,omitempty"`
	Order                  *float64 `yaml:"order,omitempty"`
	Selector               string   `yaml:"selector,omitempty"`
	NamespaceSelector      string   `yaml:"namespaceSelector,omitempty"`
	ServiceAccountSelector string   `yaml:"serviceAccountSelector,omitempty"`
	Types                  []string `yaml:"types,omitempty"`
	Ingress                []Rule   `yaml:"ingress,omitempty"`
	Egress                 []Rule   `yaml:"egress,omitempty"`
	DoNotTrack             bool     `yaml:"doNotTrack,omitempty"`
	PreDNAT                bool     `yaml:"preDNAT,omitempty"`
	ApplyOnForward         bool     `yaml:"applyOnForward,omitempty"`
	PerformanceHints       []string `yaml:"performanceHints,omitempty"`
}

type GNP struct {
	Meta `yaml:"metadata"`
	Spec GNPSpec `yaml:"spec"`
}

type EndpointPort struct {
	Name     string `yaml:"name"`
	Protocol string `yaml:"protocol"`
	Port     int    `yaml:"port"`
}

type HEPSpec struct {
	Node          string         `yaml:"node"`
	InterfaceName string         `yaml:"interfaceName,omitempty"`
	ExpectedIPs   []string       `yaml:"expectedIPs,omitempty"`
	Profiles      []string       `yaml:"profiles,omitempty"`
	Ports         []EndpointPort `yaml:"ports,omitempty"`
}

type HEP struct {
	Meta `yaml:"metadata"`
	Spec HEPSpec `yaml:"spec"`
}

type ProfileSpec struct {
	Ingress       []Rule            `yaml:"ingress,omitempty"`
	Egress        []Rule            `yaml:"egress,omitempty"`
	LabelsToApply map[string]string `yaml:"labelsToApply,omitempty"`
}

type Profile struct {
	Meta `yaml:"metadata"`
	Spec ProfileSpec `yaml:"spec"`
}

type NetSetSpec struct {
	Nets []string `yaml:"nets,omitempty"`
}

type NetSet struct {
	Meta `yaml:"metadata"`
	Spec NetSetSpec `yaml:"spec"`
}

type TierSpec struct {
	Order         *float64 `yaml:"order,omitempty"`
	DefaultAction string   `yaml:"defaultAction,omitempty"`
}

type Tier struct {
	Meta `yaml:"metadata"`
	Spec TierSpec `yaml:"spec"`
}

type ProtoPort struct {
	Protocol string `yaml:"protocol,omitempty"`
	Port     int    `yaml:"port"`
	Net      string `yaml:"net,omitempty"`
}

type FelixSpec struct {
	FailsafeInboundHostPorts     *[]ProtoPort `yaml:"failsafeInboundHostPorts,omitempty"`
	FailsafeOutboundHostPorts    *[]ProtoPort `yaml:"failsafeOutboundHostPorts,omitempty"`
	DisableConntrackInvalidCheck *bool        `yaml:"disableConntrackInvalidCheck,omitempty"`
}

// Resources is one case's configuration.
type Resources struct {
	Tiers    []Tier
	NetSets  []NetSet
	Profiles []Profile
	HEPs     []HEP
	Policies []GNP
	Felix    *FelixSpec // nil: Felix's defaults (FelixConfiguration default with an empty spec)
}

// felixYAML is the FelixConfiguration "default" of a case.
func felixDoc(f *FelixSpec) doc {
	spec := any(map[string]any{})
	if f != nil {
		spec = f
	}
	return doc{"projectcalico.org/v3", "FelixConfiguration", Meta{Name: "default"}, spec}
}

// docs lists the resources in an order calicoctl can apply (tiers before
// the policies in them).
func (r *Resources) docs(withFelix bool) []doc {
	var out []doc
	for _, x := range r.Tiers {
		out = append(out, doc{"projectcalico.org/v3", "Tier", x.Meta, x.Spec})
	}
	for _, x := range r.NetSets {
		out = append(out, doc{"projectcalico.org/v3", "GlobalNetworkSet", x.Meta, x.Spec})
	}
	for _, x := range r.Profiles {
		out = append(out, doc{"projectcalico.org/v3", "Profile", x.Meta, x.Spec})
	}
	for _, x := range r.HEPs {
		out = append(out, doc{"projectcalico.org/v3", "HostEndpoint", x.Meta, x.Spec})
	}
	for _, x := range r.Policies {
		out = append(out, doc{"projectcalico.org/v3", "GlobalNetworkPolicy", x.Meta, x.Spec})
	}
	if withFelix {
		out = append(out, felixDoc(r.Felix))
	}
	return out
}

func marshalDocs(ds []doc) []byte {
	var b bytes.Buffer
	for i, d := range ds {
		if i > 0 {
			b.WriteString("---\n")
		}
		y, err := yaml.Marshal(d)
		if err != nil {
			panic(err) // the model only holds marshallable values
		}
		b.Write(y)
	}
	return b.Bytes()
}

// YAML is the case as one multi-document Calico manifest (the
// FelixConfiguration last).
func (r *Resources) YAML() []byte { return marshalDocs(r.docs(true)) }

// resourceKey names a resource for deletion: kind and name.
type resourceKey struct{ Kind, Name string }

func (r *Resources) keys() []resourceKey {
	var out []resourceKey
	for _, d := range r.docs(false) {
		out = append(out, resourceKey{d.Kind, d.Metadata.Name})
	}
	return out
}

// parseResources reads a manifest back (regression files, shrinking).
func parseResources(b []byte) (*Resources, error) {
	r := &Resources{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var raw struct {
			Kind     string    `yaml:"kind"`
			Metadata Meta      `yaml:"metadata"`
			Spec     yaml.Node `yaml:"spec"`
		}
		if err := dec.Decode(&raw); err != nil {
			if err.Error() == "EOF" {
				return r, nil
			}
			return nil, err
		}
		var err error
		switch raw.Kind {
		case "Tier":
			x := Tier{Meta: raw.Metadata}
			err = raw.Spec.Decode(&x.Spec)
			r.Tiers = append(r.Tiers, x)
		case "GlobalNetworkSet":
			x := NetSet{Meta: raw.Metadata}
			err = raw.Spec.Decode(&x.Spec)
			r.NetSets = append(r.NetSets, x)
		case "Profile":
			x := Profile{Meta: raw.Metadata}
			err = raw.Spec.Decode(&x.Spec)
			r.Profiles = append(r.Profiles, x)
		case "HostEndpoint":
			x := HEP{Meta: raw.Metadata}
			err = raw.Spec.Decode(&x.Spec)
			r.HEPs = append(r.HEPs, x)
		case "GlobalNetworkPolicy":
			x := GNP{Meta: raw.Metadata}
			err = raw.Spec.Decode(&x.Spec)
			r.Policies = append(r.Policies, x)
		case "FelixConfiguration":
			x := FelixSpec{}
			err = raw.Spec.Decode(&x)
			if x != (FelixSpec{}) {
				r.Felix = &x
			}
		case "":
		default:
			return nil, fmt.Errorf("unexpected kind %q", raw.Kind)
		}
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", raw.Kind, raw.Metadata.Name, err)
		}
	}
}
