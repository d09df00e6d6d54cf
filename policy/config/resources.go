package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/selector"
)

// Resource kinds nfgate accepts, with their TOML array-of-tables keys.
const (
	kindGNP   = "GlobalNetworkPolicy"
	kindSGNP  = "StagedGlobalNetworkPolicy"
	kindHEP   = "HostEndpoint"
	kindGNS   = "GlobalNetworkSet"
	kindNS    = "NetworkSet" // namespaced
	kindProf  = "Profile"
	kindTier  = "Tier"
	kindFelix = "FelixConfiguration"
	kindNode  = "Node" // only its labels: a selector-scoped FelixConfiguration's nodeSelector
)

var tomlResourceKeys = map[string]string{
	"globalNetworkPolicy":       kindGNP,
	"stagedGlobalNetworkPolicy": kindSGNP,
	"hostEndpoint":              kindHEP,
	"globalNetworkSet":          kindGNS,
	"networkSet":                kindNS,
	"profile":                   kindProf,
	"tier":                      kindTier,
}

// namespaced reports whether kind is a namespaced resource.
func namespaced(kind string) bool { return kind == kindNS }

// defaultNamespace is where calicoctl puts a namespaced resource written
// without a namespace.
const defaultNamespace = "default"

// resIn is one resource as written, before conversion: for YAML the
// metadata/spec parts of a document, for TOML one flattened table.
type resIn struct {
	kind      string
	name      *node
	namespace *node // metadata.namespace (namespaced kinds)
	created   *node // metadata.creationTimestamp (YAML only)
	labels    *node
	annots    *node    // metadata.annotations (YAML only)
	spec      *node    // nil for a YAML document without spec
	meta      []string // keys of spec that are metadata (TOML's flattened name, labels)
	pos       policy.Pos
	remote    bool // from the datastore (LoadWith), not a local file
}

func (r *resIn) nameStr() string {
	if r.name != nil && r.name.kind == kString {
		return r.name.s
	}
	return ""
}

// namespaceStr is a namespaced resource's namespace, "default" when unset.
func (r *resIn) namespaceStr() string {
	if r.namespace != nil && r.namespace.kind == kString && r.namespace.s != "" {
		return r.namespace.s
	}
	return defaultNamespace
}

func (r *resIn) label() string {
	s := r.nameStr()
	if s != "" && namespaced(r.kind) {
		s = r.namespaceStr() + "/" + s
	}
	if s != "" {
		return r.kind + "/" + s
	}
	return r.kind
}

// collected holds the converted resources of every file.
type collected struct {
	policies []policy.GlobalNetworkPolicy
	// stagedDeletes are StagedGlobalNetworkPolicies with stagedAction
	// Delete: validated (their tier must exist) but never part of the model.
	stagedDeletes []policy.GlobalNetworkPolicy
	nodes         []nodeIn
	heps          []policy.HostEndpoint
	sets          []policy.GlobalNetworkSet
	profiles      []policy.Profile
	tiers         []policy.Tier
	tierPos       map[string]*node // declared tiers: name -> name node
	felix         []felixIn
	seen          map[string]policy.Pos // kind/name -> first definition
}

type felixIn struct {
	name    string
	spec    *node
	pos     policy.Pos
	remote  bool
	created time.Time // metadata.creationTimestamp; zero when unset
}

// created parses a resource's metadata.creationTimestamp (RFC 3339, as the
// Kubernetes API writes it); zero when unset or invalid (reported).
func (c *conv) created(r *resIn) time.Time {
	v, ok := c.str(r.created)
	if !ok {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		c.errf(r.created, "invalid creationTimestamp %q: want RFC 3339, e.g. \"2026-12-01T23:33:20Z\"", v)
		return time.Time{}
	}
	return t
}

// nodeIn is a Node resource: only its name and labels mean something to
// nfgate.
type nodeIn struct {
	name   string
	labels map[string]string
	pos    policy.Pos
}

// name validates the resource's name and reports duplicates across files.
// Every name must be a DNS subdomain of at most 253 characters (Calico
// validateObjectMeta); a GlobalNetworkPolicy's may hold at most one dot and
// a Tier's none.
func (c *conv) name(r *resIn, col *collected) (string, bool) {
	if !isSet(r.name) {
		c.d.add(false, r.pos, c.res, "name", "name must be specified")
		return "", false
	}
	s, ok := c.str(r.name)
	if !ok {
		return "", false
	}
	max := 253
	if r.kind == kindTier {
		max = 63
	}
	if len(s) > max {
		c.errf(r.name, "name is too long by %d bytes", len(s)-max)
		return s, false
	}
	switch {
	case (r.kind == kindGNP || r.kind == kindSGNP) && !gnpNameRe.MatchString(s):
		c.errf(r.name, "name must consist of lower case alphanumeric characters or '-' (regex: [a-z0-9]([-a-z0-9]*[a-z0-9])?), with at most one '.'")
		return s, false
	case !subdomainRe.MatchString(s):
		c.errf(r.name, "name must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (regex: [a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)")
		return s, false
	case r.kind == kindTier && !dnsLabelRe.MatchString(s):
		c.errf(r.name, "name must consist of lower case alphanumeric characters or '-' (regex: [a-z0-9]([-a-z0-9]*[a-z0-9])?)")
		return s, false
	}
	key := r.kind + "/" + s
	if namespaced(r.kind) {
		key = r.kind + "/" + r.namespaceStr() + "/" + s
	}
	if first, dup := col.seen[key]; dup {
		c.errf(r.name, "duplicate %s name %q (first defined at %s:%d)", r.kind, strings.TrimPrefix(key, r.kind+"/"), first.File, first.Line)
		return s, false
	}
	col.seen[key] = r.pos
	return s, true
}

// meta validates the resource's labels and annotations and returns the labels.
func (c *conv) meta(r *resIn) map[string]string {
	if r.annots != nil && r.annots.kind == kMap { // the loader reports other kinds
		c.annotations(r.annots)
	}
	return c.labels(r.labels)
}

func (c *conv) spec(r *resIn, allowed []string, unsupported map[string]string) *node {
	if r.spec == nil {
		return &node{kind: kMap, pos: r.pos, path: "spec"}
	}
	if !c.fields(r.spec, append(append([]string{}, r.meta...), allowed...), unsupported) {
		return &node{kind: kMap, pos: r.pos, path: r.spec.fpath()}
	}
	return r.spec
}

var gnpFields = []string{"tier", "order", "selector", "types", "ingress", "egress", "applyOnForward", "preDNAT", "doNotTrack", "namespaceSelector", "serviceAccountSelector", "performanceHints"}

func (c *conv) resource(r *resIn, col *collected) {
	c.res = r.label()
	switch r.kind {
	case kindGNP, kindSGNP:
		c.gnp(r, col)
	case kindHEP:
		c.hep(r, col)
	case kindGNS, kindNS:
		c.gns(r, col)
	case kindNode:
		c.node(r, col)
	case kindProf:
		c.profile(r, col)
	case kindTier:
		c.tier(r, col)
	}
	c.res = ""
}

// stagedActions are a StagedGlobalNetworkPolicy's stagedAction values;
// "" means Set.
var stagedActions = []string{"Set", "Delete", "Learn", "Ignore"}

// gnp converts a GlobalNetworkPolicy or a StagedGlobalNetworkPolicy. A
// staged policy is validated as the policy it stages
// (ConvertStagedGlobalPolicyToEnforced) and loaded with Staged set; with
// stagedAction Delete its spec must be empty but for tier, and it is not
// part of the model (Felix never receives it).
func (c *conv) gnp(r *resIn, col *collected) {
	name, _ := c.name(r, col)
	c.meta(r) // policies may carry labels; they have no effect
	fields := gnpFields
	if r.kind == kindSGNP {
		fields = append([]string{"stagedAction"}, gnpFields...)
	}
	s := c.spec(r, fields, nil)
	p := policy.GlobalNetworkPolicy{Name: name, Pos: r.pos, Staged: r.kind == kindSGNP}
	if r.kind == kindSGNP {
		action, _ := c.str(s.get("stagedAction"))
		if action != "" && !containsStr(stagedActions, action) {
			c.errf(s.get("stagedAction"), "invalid stagedAction %q: must be Set, Delete, Learn or Ignore", action)
		}
		if action == "Delete" {
			// calicoctl clears types before validating a Delete.
			for _, v := range s.kids {
				if v.key != "tier" && v.key != "types" && v.key != "stagedAction" && !zeroValue(v) {
					c.errf(s, "Spec fields, except Tier, should all be zero-value if stagedAction is Delete (%s is set)", v.key)
					break
				}
			}
			p.Tier, _ = c.str(s.get("tier"))
			if p.Tier == "" {
				p.Tier = "default"
			} else if !dnsLabelRe.MatchString(p.Tier) {
				c.errf(s.get("tier"), "invalid tier name %q", p.Tier)
			}
			col.stagedDeletes = append(col.stagedDeletes, p)
			return
		}
	}
	p.Tier, _ = c.str(s.get("tier"))
	if p.Tier == "" {
		p.Tier = "default"
	} else if !dnsLabelRe.MatchString(p.Tier) {
		c.errf(s.get("tier"), "invalid tier name %q", p.Tier)
	}
	if o, ok := c.number(s.get("order")); ok {
		p.Order = &o
	}

	// The selector Felix evaluates combines spec.selector, as written, with
	// the namespace and service account selectors (policy.PolicySelector).
	selOK := true
	raw := func(f string, k selKind) string {
		v, _ := c.str(s.get(f))
		if v != "" && c.selector(s.get(f), k) == nil {
			selOK = false
		}
		return v
	}
	sel := raw("selector", selPlain)
	p.NamespaceSelector = raw("namespaceSelector", selPolicyNS)
	p.ServiceAccountSelector = raw("serviceAccountSelector", selPolicySA)
	if selOK {
		var err error
		if p.Selector, err = policy.PolicySelector(sel, p.NamespaceSelector, p.ServiceAccountSelector); err != nil {
			c.errf(orSelf(s.get("selector"), s), "the selector Felix would evaluate, %s combined with namespaceSelector and serviceAccountSelector, does not parse: %v", strconvQuote(sel), err)
		}
	}
	if p.Selector == nil {
		p.Selector = selector.All()
	}
	p.ApplyOnForward = c.boolean(s.get("applyOnForward"))
	p.PreDNAT = c.boolean(s.get("preDNAT"))
	p.DoNotTrack = c.boolean(s.get("doNotTrack"))
	p.Ingress = c.rules(s.get("ingress"), policyIngress)
	p.Egress = c.rules(s.get("egress"), policyEgress)

	// performanceHints only tune Felix's work; validated and ignored.
	hints := map[string]bool{}
	for _, e := range c.list(s.get("performanceHints")) {
		v, ok := c.str(e)
		switch {
		case !ok:
		case v != "AssumeNeededOnEveryNode":
			c.errf(e, "Unsupported value: %q: supported values: \"AssumeNeededOnEveryNode\"", v)
		case hints[v]:
			// libcalico-go's own `unique` tag: calicoctl refuses it too.
			c.errf(e, "Duplicate value: %q (performanceHints must be unique)", v)
		}
		hints[v] = true
	}

	typesN := s.get("types")
	for _, e := range c.list(typesN) {
		v, ok := c.str(e)
		if !ok {
			continue
		}
		var t policy.PolicyType
		switch v {
		case "Ingress":
			t = policy.Ingress
		case "Egress":
			t = policy.Egress
		default:
			c.errf(e, "invalid type %q: must be Ingress or Egress (case-sensitive)", v)
			continue
		}
		if p.HasType(t) {
			c.errf(e, "'%s' type specified more than once", v)
			continue
		}
		p.Types = append(p.Types, t)
	}
	// Calico's defaulting (api/pkg/defaults): only when types is empty.
	egressN := s.get("egress")
	hasEgress := isSet(egressN) && egressN.kind == kList && len(egressN.list) > 0
	ingressN := s.get("ingress")
	hasIngress := isSet(ingressN) && ingressN.kind == kList && len(ingressN.list) > 0
	if len(p.Types) == 0 {
		switch {
		case !hasEgress:
			p.Types = []policy.PolicyType{policy.Ingress}
		case !hasIngress:
			p.Types = []policy.PolicyType{policy.Egress}
		default:
			p.Types = []policy.PolicyType{policy.Ingress, policy.Egress}
		}
	}

	at := func(f string) *node {
		if n := s.get(f); n != nil {
			return n
		}
		return &node{pos: s.pos, path: joinPath(s.fpath(), f)} // unset: point at the spec
	}
	if p.PreDNAT && p.DoNotTrack {
		c.errf(at("preDNAT"), "preDNAT and doNotTrack cannot both be true")
	}
	if p.PreDNAT && hasEgress {
		c.errf(egressN, "preDNAT policy cannot have any egress rules")
	}
	if p.PreDNAT && p.HasType(policy.Egress) {
		c.errf(at("types"), "preDNAT policy cannot have 'Egress' type")
	}
	if (p.PreDNAT || p.DoNotTrack) && !p.ApplyOnForward {
		c.errf(at("applyOnForward"), "applyOnForward must be true if either preDNAT or doNotTrack is true")
	}
	col.policies = append(col.policies, p)
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// zeroValue reports whether a field's value is its Go zero value after
// decoding (null, "", false); any number, list or table is not, an empty
// one included.
func zeroValue(n *node) bool {
	switch n.kind {
	case kNull:
		return true
	case kString:
		return n.s == ""
	case kBool:
		return !n.b
	}
	return false
}

var hepFields = []string{"interfaceName", "node", "expectedIPs", "profiles", "ports"}

func (c *conv) hep(r *resIn, col *collected) {
	name, _ := c.name(r, col)
	h := policy.HostEndpoint{Name: name, Pos: r.pos, Labels: c.meta(r)}
	s := c.spec(r, hepFields, nil)
	h.Node, _ = c.str(s.get("node"))
	switch {
	case h.Node == "":
		c.errf(s, "node must be specified")
	case len(h.Node) > 253 || !subdomainRe.MatchString(h.Node):
		c.errf(s.get("node"), "node %q is not a valid node name (lower case alphanumeric characters, '-' or '.', at most 253)", h.Node)
	}
	if v, ok := c.str(s.get("interfaceName")); ok && v != "" {
		if v != "*" && !interfaceRe.MatchString(v) {
			c.errf(s.get("interfaceName"), "interfaceName %q is invalid: must be \"*\" or 1-15 characters of [a-zA-Z0-9_.-]", v)
		}
		h.InterfaceName = v
	}
	seen := map[string]*node{}
	for _, e := range c.list(s.get("expectedIPs")) {
		v, ok := c.str(e)
		if !ok {
			continue
		}
		c.repeated(seen, e, v) // a set only for the API server (setOfStrings)
		a, err := netip.ParseAddr(v)
		if err != nil || a.Zone() != "" {
			c.errf(e, "invalid IP address %q", v)
			continue
		}
		h.ExpectedIPs = append(h.ExpectedIPs, a)
	}
	if h.InterfaceName == "" && len(h.ExpectedIPs) == 0 {
		c.errf(s, "at least one of interfaceName or expectedIPs must be specified")
	}
	profN := s.get("profiles")
	for i, v := range c.setOfStrings(profN) {
		if len(v) > 253 || !subdomainRe.MatchString(v) {
			c.errf(profN.list[i], "invalid profile name %q", v)
		}
		h.Profiles = append(h.Profiles, v)
	}
	for _, e := range c.list(s.get("ports")) {
		if !c.fields(e, []string{"name", "protocol", "port"}, nil) {
			continue
		}
		var ep policy.EndpointPort
		if v, ok := c.str(e.get("name")); !ok {
			if !isSet(e.get("name")) {
				c.errf(e, "a host endpoint port needs a name")
			}
		} else if msg := portNameProblem(v); msg != "" {
			c.errf(e.get("name"), "invalid port name %q: %s", v, msg)
		} else {
			ep.Name = v
		}
		if pr := c.protocol(e.get("protocol")); pr == nil {
			if !isSet(e.get("protocol")) {
				c.errf(e, "a host endpoint port needs a protocol (TCP, UDP or SCTP)")
			}
		} else if !portProto(pr.Num) {
			c.errf(e.get("protocol"), "EndpointPort protocol does not support ports (must be TCP, UDP or SCTP)")
		} else {
			ep.Protocol = pr.Num
		}
		if v, ok := c.integer(e.get("port")); !ok {
			if !isSet(e.get("port")) {
				c.errf(e, "a host endpoint port needs a port number")
			}
		} else if v < 1 || v > 65535 {
			c.errf(e.get("port"), "%s", portNumMsg)
		} else {
			ep.Port = uint16(v)
		}
		h.Ports = append(h.Ports, ep)
	}
	col.heps = append(col.heps, h)
}

// gns converts a GlobalNetworkSet or a (namespaced) NetworkSet.
func (c *conv) gns(r *resIn, col *collected) {
	name, _ := c.name(r, col)
	g := policy.GlobalNetworkSet{Name: name, Pos: r.pos, Labels: c.meta(r)}
	if namespaced(r.kind) {
		g.Namespace = r.namespaceStr()
		if r.namespace != nil && r.namespace.kind == kString && (len(g.Namespace) > 63 || !dnsLabelRe.MatchString(g.Namespace)) {
			c.errf(r.namespace, "invalid namespace %q: must be a DNS label (lower case alphanumeric characters or '-', at most 63)", g.Namespace)
		}
	}
	if _, ok := g.Labels[policy.LabelNamespace]; ok {
		c.errf(r.labels.get(policy.LabelNamespace), "projectcalico.org/namespace is not a valid label name")
	}
	s := c.spec(r, []string{"nets"}, nil)
	seen := map[string]*node{}
	for _, e := range c.list(s.get("nets")) {
		v, ok := c.str(e)
		if !ok {
			continue
		}
		c.repeated(seen, e, v)
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, err2 := netip.ParseAddr(v)
			if err2 != nil || a.Zone() != "" {
				c.errf(e, "invalid CIDR %q", v)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		if p != p.Masked() {
			c.warnf(e, "CIDR %q has host bits set; using %s", v, p.Masked())
			p = p.Masked()
		}
		g.Nets = append(g.Nets, p)
	}
	col.sets = append(col.sets, g)
}

// node reads a Node: its name and labels, which a FelixConfiguration's
// nodeSelector is matched against. Its spec (addresses, BGP, ...) means
// nothing to nfgate and is not read.
func (c *conv) node(r *resIn, col *collected) {
	name, ok := c.name(r, col)
	labels := c.meta(r)
	if r.spec != nil && r.spec.kind != kMap {
		c.errf(r.spec, "expected a table of fields, got %s", r.spec.kind)
	}
	if ok {
		col.nodes = append(col.nodes, nodeIn{name: name, labels: labels, pos: r.pos})
	}
}

func (c *conv) profile(r *resIn, col *collected) {
	name, _ := c.name(r, col)
	c.meta(r)
	s := c.spec(r, []string{"labelsToApply", "ingress", "egress"}, nil)
	p := policy.Profile{Name: name, Pos: r.pos, LabelsToApply: c.labels(s.get("labelsToApply"))}
	p.Ingress = c.rules(s.get("ingress"), profileRules)
	p.Egress = c.rules(s.get("egress"), profileRules)
	col.profiles = append(col.profiles, p)
}

// builtinTiers are the tiers Calico's client ensures exist, with the order
// and default action its validation enforces.
var builtinTiers = map[string]struct {
	order  float64
	action policy.TierDefault
}{
	"kube-admin":    {1000, policy.TierPass},
	"default":       {1000000, policy.TierDeny},
	"kube-baseline": {10000000, policy.TierPass},
}

func (c *conv) tier(r *resIn, col *collected) {
	name, ok := c.name(r, col)
	c.meta(r)
	s := c.spec(r, []string{"order", "defaultAction"}, nil)
	// Calico's client defaults order to 1000000 and defaultAction to Deny
	// before validating (libcalico-go resources/tier.go DefaultTierFields),
	// also for the built-in tiers, whose order and action are then checked.
	o := policy.DefaultTierOrder
	t := policy.Tier{Name: name, Pos: r.pos, Order: &o, DefaultAction: policy.TierDeny}
	if v, ok := c.number(s.get("order")); ok {
		o = v
	}
	if v, ok := c.str(s.get("defaultAction")); ok {
		switch v {
		case "Deny":
		case "Pass":
			t.DefaultAction = policy.TierPass
		default:
			c.errf(s.get("defaultAction"), "invalid defaultAction %q: must be Deny or Pass", v)
		}
	}
	if b, builtin := builtinTiers[name]; builtin {
		if *t.Order != b.order {
			c.errf(orSelf(s.get("order"), s), "%s tier order must be %s", name, fmt.Sprint(int64(b.order)))
		}
		if t.DefaultAction != b.action {
			want := "Deny"
			if b.action == policy.TierPass {
				want = "Pass"
			}
			c.errf(orSelf(s.get("defaultAction"), s), "The '%s' tier must have default action '%s'", name, want)
		}
	}
	if ok {
		col.tierPos[name] = r.name
	}
	col.tiers = append(col.tiers, t)
}

func orSelf(n, self *node) *node {
	if n != nil {
		return n
	}
	return self
}
