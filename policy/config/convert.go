package config

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/selector"
)

// conv validates positioned trees into the policy model. Every problem is
// recorded (never only the first), with the node's position and field path.
type conv struct {
	d   *diags
	res string // "Kind/name" of the resource being converted
}

func (c *conv) errf(n *node, format string, args ...any) {
	c.d.add(false, n.where(), c.res, n.fpath(), format, args...)
}

func (c *conv) warnf(n *node, format string, args ...any) {
	c.d.add(true, n.where(), c.res, n.fpath(), format, args...)
}

// where is the position to report for n: a scalar's own position, but the
// key of a table or list (in YAML a block list starts on the next line).
func (n *node) where() policy.Pos {
	if (n.kind == kMap || n.kind == kList) && n.kpos.Line > 0 {
		return n.kpos
	}
	return n.pos
}

func isSet(n *node) bool { return n != nil && n.kind != kNull }

// fields checks that n is a table and that every key is in allowed. Keys in
// unsupported are fields Calico has but that mean nothing on a gateway; they
// are rejected with the reason rather than silently ignored.
func (c *conv) fields(n *node, allowed []string, unsupported map[string]string) bool {
	if n.kind != kMap {
		c.errf(n, "expected a table of fields, got %s", n.kind)
		return false
	}
	for _, v := range n.kids {
		k := v.key
		if slices.Contains(allowed, k) {
			continue
		}
		if why, ok := unsupported[k]; ok {
			c.d.add(false, v.kpos, c.res, v.fpath(), "field %q is not supported by nfgate: %s", k, why)
			continue
		}
		msg := fmt.Sprintf("unknown field %q", k)
		for _, a := range allowed {
			if strings.EqualFold(a, k) {
				msg += fmt.Sprintf(" (field names are case-sensitive: did you mean %q?)", a)
				break
			}
		}
		c.d.add(false, v.kpos, c.res, v.fpath(), "%s", msg)
	}
	return true
}

func (c *conv) str(n *node) (string, bool) {
	if !isSet(n) {
		return "", false
	}
	if n.kind != kString {
		c.errf(n, "must be a string, not %s", n.kind)
		return "", false
	}
	return n.s, true
}

func (c *conv) boolean(n *node) bool {
	if !isSet(n) {
		return false
	}
	if n.kind != kBool {
		c.errf(n, "must be true or false, not %s", n.kind)
		return false
	}
	return n.b
}

func (c *conv) integer(n *node) (int64, bool) {
	if !isSet(n) {
		return 0, false
	}
	if n.kind != kInt {
		c.errf(n, "must be an integer, not %s", n.kind)
		return 0, false
	}
	return n.i, true
}

func (c *conv) number(n *node) (float64, bool) {
	switch {
	case !isSet(n):
		return 0, false
	case n.kind == kInt:
		return float64(n.i), true
	case n.kind == kFloat:
		if math.IsNaN(n.f) || math.IsInf(n.f, 0) {
			c.errf(n, "must be a finite number")
			return 0, false
		}
		return n.f, true
	}
	c.errf(n, "must be a number, not %s", n.kind)
	return 0, false
}

func (c *conv) list(n *node) []*node {
	if !isSet(n) {
		return nil
	}
	if n.kind != kList {
		c.errf(n, "must be a list, not %s", n.kind)
		return nil
	}
	return n.list
}

func (c *conv) strList(n *node) []string {
	var out []string
	for _, e := range c.list(n) {
		if s, ok := c.str(e); ok {
			out = append(out, s)
		} else if !isSet(e) {
			c.errf(e, "must be a string, not null")
		}
	}
	return out
}

// Kubernetes label syntax, which Calico enforces on labels and labelsToApply.
var (
	labelNameRe = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
	dnsLabel    = `[a-z0-9]([-a-z0-9]*[a-z0-9])?`
	subdomainRe = regexp.MustCompile(`^` + dnsLabel + `(\.` + dnsLabel + `)*$`)
	dnsLabelRe  = regexp.MustCompile(`^` + dnsLabel + `$`)
	gnpNameRe   = regexp.MustCompile(`^(` + dnsLabel + `\.)?` + dnsLabel + `$`)
	namedPortRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,128}$`)
	interfaceRe = regexp.MustCompile(`^[a-zA-Z0-9_.-]{1,15}$`)
	portRangeRe = regexp.MustCompile(`^([0-9]+):([0-9]+)$`)
	allDigitsRe = regexp.MustCompile(`^[0-9]+$`)
)

func (c *conv) labels(n *node) map[string]string {
	if !isSet(n) {
		return nil
	}
	if n.kind != kMap {
		c.errf(n, "labels must be a table of strings, not %s", n.kind)
		return nil
	}
	out := make(map[string]string, len(n.kids))
	for _, v := range n.kids {
		k := v.key
		if msg := labelKeyProblem(k); msg != "" {
			c.d.add(false, v.kpos, c.res, v.fpath(), "invalid label key %q: %s", k, msg)
		}
		if v.kind != kString {
			c.errf(v, "label values must be strings, not %s (quote it)", v.kind)
			continue
		}
		if len(v.s) > 63 || v.s != "" && !labelNameRe.MatchString(v.s) {
			c.errf(v, "invalid label value %q: must be at most 63 characters of [A-Za-z0-9_.-], starting and ending with an alphanumeric character", v.s)
		}
		out[k] = v.s
	}
	return out
}

func labelKeyProblem(k string) string {
	name := k
	if i := strings.LastIndexByte(k, '/'); i >= 0 {
		prefix := k[:i]
		name = k[i+1:]
		if len(prefix) > 253 || !subdomainRe.MatchString(prefix) {
			return "the prefix must be a DNS subdomain"
		}
	}
	if len(name) > 63 || !labelNameRe.MatchString(name) {
		return "the name must be 1-63 characters of [A-Za-z0-9_.-], starting and ending with an alphanumeric character"
	}
	return ""
}

// ---- selectors ----

type selKind uint8

const (
	selPlain     selKind = iota // policy selector, entity selector: no global()
	selNot                      // entity notSelector, serviceAccounts selector: Calico checks nothing more
	selNamespace                // entity namespaceSelector: global() only alone
	selPolicyNS                 // policy namespaceSelector: no global()
	selPolicySA                 // policy serviceAccountSelector: no global()
)

const (
	globalEntRule = "global() can only be used in an EntityRule namespaceSelector"
	globalOnly    = "global() cannot be combined with other selectors"
)

// selector parses a selector field: unset and "" give nil; a selector of
// only spaces is all(), as in Calico. The global() checks are Calico's
// validator's, which look at the text: a selector that contains "global()"
// anywhere (a string value included) is rejected where global() is not
// allowed, and a namespaceSelector that mentions "global(" must be that
// single call.
func (c *conv) selector(n *node, k selKind) *selector.Selector {
	s, ok := c.str(n)
	if !ok || s == "" {
		return nil
	}
	sel, err := selector.Parse(s)
	if err != nil {
		var pe *selector.ParseError
		if errors.As(err, &pe) {
			c.errf(n, "invalid selector %q: at position %d: %s", s, pe.Pos, pe.Msg)
		} else {
			c.errf(n, "invalid selector %q: %v", s, err)
		}
		return nil
	}
	switch k {
	case selPlain, selPolicyNS, selPolicySA:
		if strings.Contains(s, "global()") {
			c.errf(n, "%s", globalEntRule)
			return nil
		}
	case selNamespace:
		if strings.Contains(s, "global(") && s != "global()" && !selector.IsGlobalToken(s) {
			c.errf(n, "%s", globalOnly)
			return nil
		}
	}
	return sel
}

// ---- rules ----

var protoNames = map[string]uint8{"TCP": 6, "UDP": 17, "ICMP": 1, "ICMPv6": 58, "SCTP": 132, "UDPLite": 136}

const protoList = "TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite"

func (c *conv) protocol(n *node) *policy.Protocol {
	switch {
	case !isSet(n):
		return nil
	case n.kind == kInt:
		if n.i < 1 || n.i > 255 {
			c.errf(n, "protocol number invalid: %d (must be 1-255)", n.i)
			return nil
		}
		return &policy.Protocol{Num: uint8(n.i)}
	case n.kind == kString:
		if num, ok := protoNames[n.s]; ok {
			return &policy.Protocol{Num: num, Named: true}
		}
		if allDigitsRe.MatchString(n.s) {
			v, err := strconv.Atoi(n.s)
			if err != nil || v < 1 || v > 255 {
				c.errf(n, "protocol number invalid: %s (must be 1-255)", n.s)
				return nil
			}
			return &policy.Protocol{Num: uint8(v)}
		}
		for name := range protoNames {
			if strings.EqualFold(name, n.s) {
				c.errf(n, "protocol name invalid: %q (names are case-sensitive: did you mean %q?)", n.s, name)
				return nil
			}
		}
		c.errf(n, "protocol name invalid: %q (one of %s, or a number 1-255)", n.s, protoList)
		return nil
	}
	c.errf(n, "protocol must be a name (%s) or a number 1-255, not %s", protoList, n.kind)
	return nil
}

func (c *conv) icmp(n *node) *policy.ICMPMatch {
	if !isSet(n) || !c.fields(n, []string{"type", "code"}, nil) {
		return nil
	}
	m := &policy.ICMPMatch{}
	if t, ok := c.integer(n.get("type")); ok {
		if t < 0 || t > 254 {
			c.errf(n.get("type"), "ICMP type must be between 0 and 254")
		}
		m.Type, m.HasType = uint8(t), true
	}
	if v, ok := c.integer(n.get("code")); ok {
		if v < 0 || v > 255 {
			c.errf(n.get("code"), "ICMP code must be between 0 and 255")
		}
		m.Code, m.HasCode = uint8(v), true
		if !m.HasType {
			c.errf(n.get("code"), "ICMP code specified without an ICMP type")
		}
	}
	return m
}

var actions = map[string]policy.Action{"Allow": policy.Allow, "Deny": policy.Deny, "Log": policy.Log, "Pass": policy.Pass}

var ruleFields = []string{"action", "ipVersion", "protocol", "notProtocol", "icmp", "notICMP", "source", "destination", "http", "metadata"}

var entityFields = []string{"nets", "notNets", "selector", "notSelector", "namespaceSelector", "serviceAccounts", "services", "ports", "notPorts"}

const maxRules = 1024

// ruleSet says where a list of rules is: a policy's ingress or egress
// rules, or a profile's (which Calico checks less).
type ruleSet uint8

const (
	policyIngress ruleSet = iota
	policyEgress
	profileRules
)

func (c *conv) rules(n *node, where ruleSet) []policy.Rule {
	els := c.list(n)
	if len(els) > maxRules {
		c.errf(n, "too many rules (%d): at most %d are allowed per direction", len(els), maxRules)
	}
	out := make([]policy.Rule, 0, len(els))
	for _, e := range els {
		if r, ok := c.rule(e, where); ok {
			out = append(out, r)
		}
	}
	return out
}

// Calico's validator messages (libcalico-go validator/v3).
const (
	protocolPortsMsg   = "rules that specify ports must set protocol to TCP or UDP or SCTP"
	protocolNumPortMsg = "rules with numeric port or port range must set protocol to TCP or UDP or SCTP"
	protocolICMPMsg    = "rules that specify ICMP fields must set protocol to ICMP"
	protocolHTTPMsg    = "rules that specify HTTP fields must set protocol to TCP or empty"
)

func (c *conv) rule(n *node, where ruleSet) (policy.Rule, bool) {
	r := policy.Rule{Pos: n.pos}
	if !c.fields(n, ruleFields, nil) {
		return r, false
	}
	if a := n.get("action"); !isSet(a) {
		c.errf(n, "action must be specified (Allow, Deny, Log or Pass)")
	} else if s, ok := c.str(a); ok {
		if r.Action, ok = actions[s]; !ok {
			c.errf(a, "invalid action %q: must be one of Allow, Deny, Log, Pass (case-sensitive)", s)
		}
	}
	if v := n.get("ipVersion"); isSet(v) {
		if x, ok := c.integer(v); ok {
			if x != 4 && x != 6 {
				c.errf(v, "ipVersion must be 4 or 6")
			} else {
				r.IPVersion = uint8(x)
			}
		}
	}
	if m := n.get("metadata"); isSet(m) {
		if c.fields(m, []string{"annotations"}, nil) {
			c.annotations(m.get("annotations"))
		}
	}
	r.Protocol = c.protocol(n.get("protocol"))
	r.NotProtocol = c.protocol(n.get("notProtocol"))
	r.ICMP = c.icmp(n.get("icmp"))
	r.NotICMP = c.icmp(n.get("notICMP"))
	srcN, dstN := n.get("source"), n.get("destination")
	r.Source = c.entity(srcN)
	r.Destination = c.entity(dstN)

	// ICMP fields need protocol ICMP or ICMPv6, by name (Calico compares
	// the protocol with the names).
	isICMP := func(p *policy.Protocol) bool { return p != nil && p.Named && (p.Num == 1 || p.Num == 58) }
	if x := n.get("icmp"); isSet(x) && !isICMP(r.Protocol) {
		c.errf(x, "%s", protocolICMPMsg)
	}
	if x := n.get("notICMP"); isSet(x) && !isICMP(r.Protocol) {
		// Calico's validator lets this through, but Felix renders
		// "-m icmp ! --icmp-type" without "-p icmp", which iptables refuses
		// (docs/semantics.md, deliberate differences).
		c.errf(x, "notICMP needs protocol ICMP or ICMPv6: Calico accepts the rule but Felix cannot program it (iptables refuses an icmp match without -p icmp)")
	}
	for _, f := range []string{"protocol", "notProtocol"} {
		p := r.Protocol
		if f == "notProtocol" {
			p = r.NotProtocol
		}
		if p == nil || !p.Named {
			continue
		}
		if p.Num == 1 && r.IPVersion == 6 {
			c.errf(n.get(f), "must set ipversion to '4' with protocol icmp")
		}
		if p.Num == 58 && r.IPVersion == 4 {
			c.errf(n.get(f), "must set ipversion to '6' with protocol icmpv6")
		}
	}

	// Ports need a protocol that has ports.
	for _, side := range []*node{srcN, dstN} {
		if !isSet(side) || side.kind != kMap {
			continue
		}
		for _, f := range []string{"ports", "notPorts"} {
			pl := side.get(f)
			if !isSet(pl) || pl.kind != kList || len(pl.list) == 0 {
				continue
			}
			if r.Protocol != nil {
				if !portProto(r.Protocol.Num) {
					c.errf(pl, "%s", protocolPortsMsg)
				}
				continue
			}
			for _, e := range pl.list {
				if e.kind == kInt || e.kind == kString && (allDigitsRe.MatchString(e.s) || portRangeRe.MatchString(e.s)) {
					c.errf(e, "%s", protocolNumPortMsg)
					break
				}
			}
		}
	}

	// Address families of the rule's CIDRs.
	var first *node
	var firstV4 bool
	for _, side := range []*node{srcN, dstN} {
		if !isSet(side) || side.kind != kMap {
			continue
		}
		for _, f := range []string{"nets", "notNets"} {
			for _, e := range side.get(f).listOrNil() {
				p, ok := parseNet(e)
				if !ok {
					continue
				}
				v4 := p.Addr().Is4()
				if r.IPVersion == 4 && !v4 || r.IPVersion == 6 && v4 {
					c.errf(e, "rule IP version doesn't match CIDR version")
				}
				if first == nil {
					first, firstV4 = e, v4
				} else if v4 != firstV4 {
					c.errf(e, "rule contains both IPv4 and IPv6 CIDRs")
				}
			}
		}
	}

	// HTTP matches load; Felix's iptables dataplane enforces only the rule's
	// other fields (check warns).
	if h := n.get("http"); isSet(h) {
		c.http(h)
		if r.Action != policy.Allow && r.Action != 0 {
			c.errf(h, "HTTP match is only valid on Allow rules")
		}
		if r.Protocol != nil && !(r.Protocol.Named && r.Protocol.Num == 6) {
			c.errf(n.get("protocol"), "%s", protocolHTTPMsg)
		}
		if where == policyEgress {
			c.errf(h, "HTTP match is not allowed in egress rules")
		}
		r.HTTP = true
		c.warnf(h, "the HTTP match is not enforced: Calico's iptables dataplane ignores it, so this rule matches on its other fields alone")
	}

	// Kubernetes services (Calico: only from the destination of an egress
	// rule or the source of an ingress rule, with a namespace in a global
	// policy).
	for i, side := range []*node{srcN, dstN} {
		sv := side.get("services")
		if !isSet(sv) {
			continue
		}
		e := &r.Source
		if i == 1 {
			e = &r.Destination
		}
		c.warnf(sv, "a standalone gateway knows no Kubernetes service endpoints: this rule never matches (Felix matches the service's endpoints)")
		switch {
		case where == policyEgress && i == 0:
			c.errf(sv, "services not allowed in egress rule source")
		case where == policyIngress && i == 1:
			c.errf(sv, "services not allowed in ingress rule destination")
		case where != profileRules && e.Services != nil && e.Services.Namespace == "":
			c.errf(sv, "services: must specify a namespace")
		}
		if i == 1 {
			if pl := side.get("ports"); isSet(pl) && pl.kind == kList && len(pl.list) > 0 {
				c.errf(pl, "cannot specify ports with a service selector")
			}
			if pl := side.get("notPorts"); isSet(pl) && pl.kind == kList && len(pl.list) > 0 {
				c.errf(pl, "cannot specify notports with a service selector")
			}
		}
	}
	return r, true
}

// http validates a rule's http match (Calico validateHTTPRule and the CRD's
// limits). nfgate does not enforce it.
func (c *conv) http(n *node) {
	if !c.fields(n, []string{"methods", "paths"}, nil) {
		return
	}
	const maxItems, maxLen = 20, 1024
	if ms := c.list(n.get("methods")); len(ms) > 0 {
		if len(ms) > maxItems {
			c.errf(n.get("methods"), "methods: must have at most %d items", maxItems)
		}
		seen := map[string]bool{}
		var all []string
		dup := false
		for _, m := range ms {
			v, ok := c.str(m)
			if !ok {
				continue
			}
			dup = dup || seen[v]
			seen[v] = true
			all = append(all, v)
		}
		if dup {
			c.errf(n.get("methods"), "Invalid methods (duplicates): %v", all)
		}
	}
	ps := c.list(n.get("paths"))
	if len(ps) > maxItems {
		c.errf(n.get("paths"), "paths: must have at most %d items", maxItems)
	}
	for _, p := range ps {
		if !c.fields(p, []string{"exact", "prefix"}, nil) {
			continue
		}
		exact, _ := c.str(p.get("exact"))
		prefix, _ := c.str(p.get("prefix"))
		for _, v := range []string{exact, prefix} {
			if len(v) > maxLen {
				c.errf(p, "a path may be at most %d characters long", maxLen)
			}
		}
		v := exact
		if v == "" {
			v = prefix
		}
		switch {
		case exact != "" && prefix != "":
			c.errf(p, "Invalid path match. Both 'exact' and 'prefix' are set")
		case v == "":
			c.errf(p, "Invalid path match. Either 'exact' or 'prefix' must be set")
		case !strings.HasPrefix(v, "/") || strings.ContainsAny(v, "? #"):
			c.errf(p, "Invalid path %s. (must start with `/` and not contain `?` or `#`", v)
		}
	}
}

// annotations validates metadata annotations as Calico does: every key a
// qualified name (checked in lower case), values strings, 256 KiB in all.
func (c *conv) annotations(n *node) {
	if !isSet(n) {
		return
	}
	if n.kind != kMap {
		c.errf(n, "annotations must be a mapping")
		return
	}
	total := 0
	for _, v := range n.kids {
		if msg := labelKeyProblem(strings.ToLower(v.key)); msg != "" {
			c.d.add(false, v.kpos, c.res, v.fpath(), "invalid annotation key %q: %s", v.key, msg)
		}
		if s, ok := c.str(v); ok {
			total += len(v.key) + len(s)
		}
	}
	if const256k := 256 << 10; total > const256k {
		c.errf(n, "total size of annotations is too large by %d bytes", total-const256k)
	}
}

func portProto(num uint8) bool { return num == 6 || num == 17 || num == 132 }

func (n *node) listOrNil() []*node {
	if n == nil || n.kind != kList {
		return nil
	}
	return n.list
}

const (
	maxNets  = 256
	maxPorts = 50
)

func (c *conv) entity(n *node) policy.EntityRule {
	var e policy.EntityRule
	if !isSet(n) || !c.fields(n, entityFields, nil) {
		return e
	}
	e.Nets = c.nets(n.get("nets"), false, maxNets)
	e.NotNets = c.nets(n.get("notNets"), true, maxNets)
	e.Selector = c.selector(n.get("selector"), selPlain)
	e.NotSelector = c.selector(n.get("notSelector"), selNot)
	e.NamespaceSelector = c.selector(n.get("namespaceSelector"), selNamespace)
	e.Ports = c.ports(n.get("ports"))
	e.NotPorts = c.ports(n.get("notPorts"))
	if sa := n.get("serviceAccounts"); isSet(sa) && c.fields(sa, []string{"names", "selector"}, nil) {
		e.ServiceAccounts = &policy.ServiceAccountMatch{Names: c.setOfStrings(sa.get("names")), Selector: c.selector(sa.get("selector"), selNot)}
	}
	if sv := n.get("services"); isSet(sv) && c.fields(sv, []string{"name", "namespace"}, nil) {
		m := &policy.ServiceMatch{}
		m.Name, _ = c.str(sv.get("name"))
		m.Namespace, _ = c.str(sv.get("namespace"))
		for _, f := range []string{"name", "namespace"} {
			if v, ok := c.str(sv.get(f)); ok && v != "" && !subdomainRe.MatchString(v) {
				c.errf(sv.get(f), "invalid service %s %q", f, v)
			}
		}
		if m.Name == "" {
			c.errf(sv, "Services field: must specify a service name")
		}
		conflict := func(f, what string) {
			if x := n.get(f); isSet(x) {
				c.errf(x, "Services field: cannot specify %s and Services on the same rule", what)
			}
		}
		conflict("namespaceSelector", "NamespaceSelector")
		conflict("selector", "Selector/NotSelector")
		conflict("notSelector", "Selector/NotSelector")
		conflict("serviceAccounts", "ServiceAccounts")
		conflict("nets", "Nets/NotNets")
		conflict("notNets", "Nets/NotNets")
		e.Services = m
	}
	return e
}

// setOfStrings reads a list of strings that Calico's schema declares a set
// (listType=set). Only the Kubernetes API server enforces that; calicoctl on
// etcd, libcalico-go's validator alone, stores a repeated value (checked on
// v3.32.1), and a repetition changes no verdict: a warning, not an error.
func (c *conv) setOfStrings(n *node) []string {
	out := c.strList(n)
	seen := map[string]*node{}
	for i, v := range out {
		c.repeated(seen, n.list[i], v)
	}
	return out
}

// repeated warns when v, the value of e, was already seen in the same list
// (see setOfStrings), naming the first occurrence.
func (c *conv) repeated(seen map[string]*node, e *node, v string) {
	if first, dup := seen[v]; dup {
		at := first.where()
		c.warnf(e, "%q is listed twice (first at line %d, column %d): Calico accepts the repetition, which changes nothing", v, at.Line, at.Col)
		return
	}
	seen[v] = e
}

// parseNet parses a rule's CIDR the way Calico's validator does: a CIDR
// (a bare address is "invalid CIDR" there), strictly masked.
func parseNet(n *node) (netip.Prefix, bool) {
	if n.kind != kString {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(n.s)
	return p, err == nil && p == p.Masked()
}

// nets converts a rule's list of CIDRs (a repeated CIDR is a warning, see
// setOfStrings); notNets may not hold a catch-all CIDR.
func (c *conv) nets(n *node, negated bool, max int) []netip.Prefix {
	els := c.list(n)
	if len(els) > max {
		c.errf(n, "too many nets (%d): at most %d are allowed", len(els), max)
	}
	out := make([]netip.Prefix, 0, len(els))
	seen := map[string]*node{}
	for _, e := range els {
		s, ok := c.str(e)
		if !ok {
			if !isSet(e) {
				c.errf(e, "invalid CIDR: null")
			}
			continue
		}
		c.repeated(seen, e, s)
		p, ok := parseNet(e)
		if !ok {
			if q, err := netip.ParsePrefix(s); err == nil {
				c.errf(e, "invalid CIDR %q: host bits are set (did you mean %s?)", s, q.Masked())
			} else if a, err := netip.ParseAddr(s); err == nil {
				c.errf(e, "invalid CIDR %q: a rule's nets need a prefix length (did you mean %s?)", s, netip.PrefixFrom(a, a.BitLen()))
			} else {
				c.errf(e, "invalid CIDR %q", s)
			}
			continue
		}
		if negated && p.Bits() == 0 {
			c.errf(e, "catch-all CIDR in negation creates logical contradiction (matches no traffic)")
			continue
		}
		out = append(out, p)
	}
	return out
}

const portNumMsg = "port range invalid, port number must be between 1 and 65535"

func (c *conv) ports(n *node) []policy.Port {
	els := c.list(n)
	if len(els) > maxPorts {
		c.errf(n, "too many ports (%d): at most %d are allowed", len(els), maxPorts)
	}
	out := make([]policy.Port, 0, len(els))
	for _, e := range els {
		if p, ok := c.port(e); ok {
			out = append(out, p)
		}
	}
	return out
}

func (c *conv) port(n *node) (policy.Port, bool) {
	num := func(v int64) (uint16, bool) {
		if v < 1 || v > 65535 {
			c.errf(n, "%s", portNumMsg)
			return 0, false
		}
		return uint16(v), true
	}
	switch n.kind {
	case kInt:
		p, ok := num(n.i)
		return policy.Port{Min: p, Max: p}, ok
	case kString:
		if allDigitsRe.MatchString(n.s) {
			v, _ := strconv.ParseInt(n.s, 10, 64)
			if len(n.s) > 6 {
				v = 1 << 20
			}
			p, ok := num(v)
			return policy.Port{Min: p, Max: p}, ok
		}
		if m := portRangeRe.FindStringSubmatch(n.s); m != nil {
			lo, _ := strconv.ParseInt(m[1], 10, 64)
			hi, _ := strconv.ParseInt(m[2], 10, 64)
			if len(m[1]) > 6 {
				lo = 1 << 20
			}
			if len(m[2]) > 6 {
				hi = 1 << 20
			}
			a, ok1 := num(lo)
			b, ok2 := num(hi)
			if !ok1 || !ok2 {
				return policy.Port{}, false
			}
			if a > b {
				c.errf(n, "minimum port number (%d) is greater than maximum port number (%d) in port range", a, b)
				return policy.Port{}, false
			}
			return policy.Port{Min: a, Max: b}, true
		}
		if !namedPortRe.MatchString(n.s) {
			c.errf(n, "invalid name for named port (%s)", n.s)
			return policy.Port{}, false
		}
		if msg := portNameProblem(n.s); msg != "" {
			c.errf(n, "invalid port name %q: %s", n.s, msg)
			return policy.Port{}, false
		}
		return policy.Port{Name: n.s}, true
	}
	c.errf(n, "a port must be a number, a \"min:max\" range or a port name, not %s", n.kind)
	return policy.Port{}, false
}

// portNameProblem is Kubernetes' IsValidPortName, which Calico applies to
// named ports in rules and on host endpoints.
func portNameProblem(s string) string {
	switch {
	case len(s) > 15:
		return "must be no more than 15 characters"
	case !portNameRe.MatchString(s):
		return "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"
	case strings.Contains(s, "--"):
		return "must not contain consecutive hyphens"
	case !strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyz"):
		return "must contain at least one letter (a-z)"
	case s[0] == '-' || s[len(s)-1] == '-':
		return "must not begin or end with a hyphen"
	}
	return ""
}

var portNameRe = regexp.MustCompile(`^[-a-z0-9]+$`)
