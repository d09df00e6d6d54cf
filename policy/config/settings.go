package config

import (
	"fmt"
	"math/bits"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/selector"
)

// Felix settings nfgate honours, under the same names in TOML [gateway] and
// in a FelixConfiguration's spec.
var felixFields = []string{
	"interfacePrefix", "interfaceExclude", "failsafeInboundHostPorts", "failsafeOutboundHostPorts",
	"iptablesFilterDenyAction", "defaultEndpointToHostAction", "disableConntrackInvalidCheck",
}

// felixSemantic are FelixConfiguration fields that would change Calico's
// verdicts but that nfgate does not implement: warned about more loudly.
var felixSemantic = map[string]bool{
	"chainInsertMode": true, "iptablesFilterAllowAction": true, "iptablesMangleAllowAction": true,
	"ipipEnabled": true, "vxlanEnabled": true, "wireguardEnabled": true, "bpfEnabled": true,
	"logPrefix": true, "logActionRateLimit": true, "logActionRateLimitBurst": true,
}

// settingsFrom resolves the gateway settings from [gateway] and the
// FelixConfiguration resources. FelixConfiguration "default" applies first,
// "node.<nodeName>" overrides it (as in Calico), and a field may not be set
// both in [gateway] and in a FelixConfiguration.
func (c *conv) settingsFrom(gw *node, felix []felixIn, nodes []nodeIn) policy.Settings {
	st := policy.Settings{
		InterfacePrefix:             []string{"cali"},
		FailsafeInbound:             policy.DefaultFailsafeInbound(),
		FailsafeOutbound:            policy.DefaultFailsafeOutbound(),
		DenyAction:                  policy.DenyDrop,
		DefaultEndpointToHostAction: policy.Deny,
		InterfaceExclude:            DefaultInterfaceExclude(),
	}
	if gw == nil {
		c.d.add(false, policy.Pos{}, "", "gateway", "the main configuration file needs a [gateway] table with nodeName")
		gw = &node{kind: kMap, path: "gateway"}
	} else if !c.fields(gw, append([]string{"nodeName"}, felixFields...), nil) {
		return st
	}
	if v, ok := c.str(gw.get("nodeName")); ok && strings.TrimSpace(v) != "" {
		st.NodeName = v
	} else if ok {
		c.errf(gw.get("nodeName"), "nodeName must not be empty")
	} else if !isSet(gw.get("nodeName")) {
		c.d.add(false, gw.pos, "", joinPath(gw.fpath(), "nodeName"), "nodeName must be specified")
	}

	// Felix's layers: "default", then the selector-scoped configuration
	// that selects this node, then "node.<nodeName>" (each field of a later
	// layer wins).
	var layers []felixIn
	for _, f := range felix {
		if f.name == "default" {
			layers = append(layers, f)
		}
	}
	if sel, ok := c.selectorLayer(st.NodeName, felix, nodes); ok {
		layers = append(layers, sel)
	}
	for _, f := range felix {
		if st.NodeName != "" && f.name == "node."+st.NodeName {
			layers = append(layers, f)
		}
	}
	for _, f := range felix {
		c.res = kindFelix + "/" + f.name
		if len(f.name) > 253 || f.name != "" && !subdomainRe.MatchString(f.name) {
			c.d.add(false, f.pos, c.res, "metadata.name", "name must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (at most 253)")
		}
		if f.name != "default" && strings.HasPrefix(f.name, "node.") && st.NodeName != "" && f.name != "node."+st.NodeName {
			c.d.add(true, f.pos, c.res, "metadata.name", "FelixConfiguration %q is for another node; ignored", f.name)
		}
		if f.spec == nil {
			continue
		}
		if f.spec.kind != kMap {
			c.errf(f.spec, "expected a table of fields, got %s", f.spec.kind)
			continue
		}
		c.validateFelixSpec(f.name, f.spec)
		for _, v := range f.spec.kids {
			k := v.key
			if containsStr(felixFields, k) || felixSpecFields[k] == nil || k == "nodeSelector" {
				continue
			}
			if felixSemantic[k] {
				c.d.add(true, v.kpos, c.res, v.fpath(), "FelixConfiguration field %q changes Calico's behaviour but nfgate does not implement it; ignored", k)
			} else {
				c.d.add(true, v.kpos, c.res, v.fpath(), "FelixConfiguration field %q has no meaning for nfgate; ignored", k)
			}
		}
	}
	for _, f := range layers {
		if f.spec == nil || f.spec.kind != kMap {
			continue
		}
		c.res = kindFelix + "/" + f.name
		for _, k := range felixFields {
			v := f.spec.get(k)
			if !isSet(v) {
				continue
			}
			if g := gw.get(k); isSet(g) {
				if f.remote {
					// Local settings win over the datastore's (docs/fleet.md).
					c.warnf(v, "%s is also set in [gateway] at %s:%d; the local value wins", k, g.pos.File, g.pos.Line)
					continue
				}
				c.errf(v, "%s is also set in [gateway] at %s:%d; set it in one place", k, g.pos.File, g.pos.Line)
			}
			c.felixField(&st, k, v, true)
		}
	}
	c.res = ""
	for _, k := range felixFields {
		if v := gw.get(k); isSet(v) {
			c.felixField(&st, k, v, false)
		}
	}
	return st
}

// selectorLayer picks the selector-scoped FelixConfiguration that applies
// to node nodeName, as Felix v3.32.1 does (felix/calc/config_batcher.go
// MergeSelectorConfigs, daemon.go loadSelectorScopedFelixConfig): every
// FelixConfiguration other than "default" and "node.*" with a nodeSelector
// that parses and selects the labels of the Node named nodeName; of several,
// the oldest by creationTimestamp, then the smallest name. A Node without
// labels (or no Node) gets none, not even from nodeSelector all(): Felix
// keeps no label map for it. Whatever is skipped is warned about.
func (c *conv) selectorLayer(nodeName string, felix []felixIn, nodes []nodeIn) (felixIn, bool) {
	var nd *nodeIn
	for i := range nodes {
		if nodes[i].name == nodeName {
			nd = &nodes[i]
		}
	}
	var matches []felixIn
	for _, f := range felix {
		if f.name == "default" || strings.HasPrefix(f.name, "node.") {
			continue
		}
		c.res = kindFelix + "/" + f.name
		var selN *node
		if f.spec != nil && f.spec.kind == kMap {
			selN = f.spec.get("nodeSelector")
		}
		text, _ := c.str(selN)
		if text == "" {
			c.d.add(true, f.pos, c.res, "spec.nodeSelector", "FelixConfiguration %q has no nodeSelector: Felix ignores it (only \"default\", \"node.<nodeName>\" and configurations with a nodeSelector apply)", f.name)
			continue
		}
		sel, err := selector.Parse(text)
		if err != nil {
			c.warnf(selN, "nodeSelector %q does not parse (%v): Felix ignores this FelixConfiguration", text, err)
			continue
		}
		switch {
		case nodeName == "":
		case nd == nil:
			c.warnf(selN, "no Node %q is defined: Felix matches nodeSelector against that Node's labels, so this FelixConfiguration does not apply", nodeName)
		case len(nd.labels) == 0:
			c.warnf(selN, "Node %q has no labels: Felix applies no selector-scoped FelixConfiguration to it (not even nodeSelector all())", nodeName)
		case !sel.Evaluate(nd.labels):
			c.warnf(selN, "nodeSelector %s does not select Node %q (labels %s): this FelixConfiguration does not apply", text, nodeName, labelString(nd.labels))
		default:
			matches = append(matches, f)
		}
	}
	c.res = ""
	if len(matches) == 0 {
		return felixIn{}, false
	}
	sort.SliceStable(matches, func(i, j int) bool {
		a, b := matches[i], matches[j]
		if !a.created.Equal(b.created) {
			return a.created.Before(b.created)
		}
		return a.name < b.name
	})
	for _, f := range matches[1:] {
		c.res = kindFelix + "/" + f.name
		c.d.add(true, f.pos, c.res, "spec.nodeSelector", "FelixConfiguration %q also selects Node %q: Felix uses only the oldest matching one (by creationTimestamp, then name), %q", f.name, nodeName, matches[0].name)
	}
	c.res = ""
	return matches[0], true
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return "{" + strings.Join(keys, ", ") + "}"
}

// DefaultInterfaceExclude is Felix's default InterfaceExclude: kube-ipvs0.
func DefaultInterfaceExclude() []*regexp.Regexp {
	return []*regexp.Regexp{regexp.MustCompile("^kube-ipvs0$")}
}

// Felix's InterfaceExclude syntax (config_params.go): a comma-separated list
// (no spaces) of interface names or /regex/ patterns.
var (
	excludeNameRe  = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,15}$`)
	excludeRegexRe = regexp.MustCompile(`^/[^\s]+/$`)
)

// ParseInterfaceExclude parses Felix's InterfaceExclude value. "none" is no
// exclusion at all.
func ParseInterfaceExclude(s string) ([]*regexp.Regexp, error) {
	if s == "none" {
		return []*regexp.Regexp{}, nil
	}
	out := []*regexp.Regexp{}
	for _, t := range strings.Split(s, ",") {
		switch {
		case excludeRegexRe.MatchString(t):
			re, err := regexp.Compile(t[1 : len(t)-1])
			if err != nil {
				return nil, fmt.Errorf("%q: %v", t, err)
			}
			out = append(out, re)
		case excludeNameRe.MatchString(t):
			out = append(out, regexp.MustCompile("^"+regexp.QuoteMeta(t)+"$"))
		default:
			return nil, fmt.Errorf("%q is neither an interface name nor a /regex/ (entries are separated by commas, without spaces)", t)
		}
	}
	return out, nil
}

// ExcludePattern writes an InterfaceExclude entry back as the user wrote
// it: a name, or /regex/.
func ExcludePattern(re *regexp.Regexp) string {
	s := re.String()
	if len(s) > 2 && s[0] == '^' && s[len(s)-1] == '$' && excludeNameRe.MatchString(s[1:len(s)-1]) {
		return s[1 : len(s)-1]
	}
	return "/" + s + "/"
}

func containsStr(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// felixField sets one setting. felix: the value comes from a
// FelixConfiguration resource (rather than [gateway]).
func (c *conv) felixField(st *policy.Settings, k string, v *node, felix bool) {
	switch k {
	case "interfaceExclude":
		s, ok := c.str(v)
		if !ok {
			return
		}
		if s == "" {
			return // Felix ignores an empty value: the default stays
		}
		l, err := ParseInterfaceExclude(s)
		switch {
		case err == nil:
			st.InterfaceExclude = l
		case felix:
			// Calico accepts the resource; Felix replaces the invalid value
			// with its default.
			c.warnf(v, "invalid interfaceExclude: %v; Felix uses its default (kube-ipvs0) instead", err)
		default:
			c.errf(v, "invalid interfaceExclude: %v", err)
		}
	case "interfacePrefix":
		s, ok := c.str(v)
		if !ok {
			return
		}
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		if len(out) == 0 {
			c.errf(v, "interfacePrefix must name at least one prefix")
			return
		}
		st.InterfacePrefix = out
	case "failsafeInboundHostPorts", "failsafeOutboundHostPorts":
		var l []policy.ProtoPort
		var ok bool
		if felix {
			l, ok = c.felixFailsafe(v)
		} else {
			l, ok = c.failsafe(v)
		}
		if ok && k == "failsafeInboundHostPorts" {
			st.FailsafeInbound = l
		} else if ok {
			st.FailsafeOutbound = l
		}
	case "iptablesFilterDenyAction":
		s, ok := c.str(v)
		if felix && s != "Drop" && s != "Reject" {
			return // validateFelixSpec reported it
		}
		if !ok {
			return
		}
		switch strings.ToUpper(s) {
		case "DROP":
			st.DenyAction = policy.DenyDrop
		case "REJECT":
			st.DenyAction = policy.DenyReject
		default:
			c.errf(v, "iptablesFilterDenyAction must be DROP or REJECT, not %q", s)
		}
	case "defaultEndpointToHostAction":
		s, ok := c.str(v)
		if felix && s != "Drop" && s != "Accept" && s != "Return" {
			return // validateFelixSpec reported it
		}
		if !ok {
			return
		}
		// Return (leave the decision to the host's rules) maps to Pass.
		switch strings.ToUpper(s) {
		case "DROP":
			st.DefaultEndpointToHostAction = policy.Deny
		case "ACCEPT":
			st.DefaultEndpointToHostAction = policy.Allow
		case "RETURN":
			st.DefaultEndpointToHostAction = policy.Pass
		default:
			c.errf(v, "defaultEndpointToHostAction must be Drop, Accept or Return, not %q", s)
		}
	case "disableConntrackInvalidCheck":
		st.DisableConntrackInvalidCheck = c.boolean(v)
	}
}

// failsafe parses a failsafe port list: Felix's string form
// ("tcp:22, udp:68, tcp:[::/0]:22", "none") or the v3 API list form
// ([{protocol, port, net}]; an empty list means none).
func (c *conv) failsafe(v *node) ([]policy.ProtoPort, bool) {
	switch v.kind {
	case kString:
		l, err := ParseFailsafe(v.s)
		if err != nil {
			c.errf(v, "%v", err)
			return nil, false
		}
		return l, true
	case kList:
		out := []policy.ProtoPort{}
		ok := true
		for _, e := range v.list {
			if !c.fields(e, []string{"protocol", "port", "net"}, nil) {
				ok = false
				continue
			}
			pp := policy.ProtoPort{Protocol: 6}
			if s, set := c.str(e.get("protocol")); set {
				switch s {
				case "TCP":
				case "UDP":
					pp.Protocol = 17
				case "SCTP":
					c.errf(e.get("protocol"), "failsafe protocol SCTP is accepted by Calico's API but rejected by Felix; only TCP and UDP work")
					ok = false
				default:
					c.errf(e.get("protocol"), "failsafe protocol must be TCP or UDP, not %q", s)
					ok = false
				}
			}
			if p, set := c.integer(e.get("port")); !set {
				if !isSet(e.get("port")) {
					c.errf(e, "failsafe entry needs a port")
				}
				ok = false
			} else if p < 0 || p > 65535 {
				c.errf(e.get("port"), "failsafe port must be between 0 and 65535")
				ok = false
			} else {
				pp.Port = uint16(p)
			}
			if s, set := c.str(e.get("net")); set {
				n, err := parseNetOrIP(s)
				if err != nil {
					c.errf(e.get("net"), "invalid failsafe net %q", s)
					ok = false
				}
				pp.Net = n
			}
			out = append(out, pp)
		}
		return out, ok
	}
	c.errf(v, "must be a Felix port list string (\"tcp:22, udp:68\") or a list of {protocol, port, net}, not %s", v.kind)
	return nil, false
}

// felixFailsafe reads a FelixConfiguration's failsafe list, which
// validateFelixSpec has checked. Calico's API accepts any protocol string
// there, but Felix converts the list to its own "tcp:22" syntax (protocol
// lower-cased), which knows only tcp and udp, and this setting is
// die-on-fail: any other protocol (SCTP, none, a typo) or a net that does
// not parse makes Felix panic and restart forever (checked against Felix
// v3.32.1). nfgate refuses such a list (docs/semantics.md).
func (c *conv) felixFailsafe(v *node) ([]policy.ProtoPort, bool) {
	if v.kind != kList {
		return nil, false
	}
	out := []policy.ProtoPort{}
	ok := true
	for _, e := range v.list {
		if e.kind != kMap {
			return nil, false
		}
		pp := policy.ProtoPort{}
		proto, _ := c.str(e.get("protocol"))
		switch strings.ToLower(proto) {
		case "tcp":
			pp.Protocol = 6
		case "udp":
			pp.Protocol = 17
		default:
			c.errf(orSelf(e.get("protocol"), e), "failsafe protocol %q: Calico's API accepts it, but Felix accepts only TCP and UDP here and stops with a panic on any other", proto)
			ok = false
		}
		p, set := c.integer(e.get("port"))
		if !set || p < 0 || p > 65535 {
			return nil, false
		}
		pp.Port = uint16(p)
		if s, set := c.str(e.get("net")); set && s != "" {
			n, err := parseNetOrIP(s)
			if err != nil {
				c.errf(e.get("net"), "invalid failsafe net %q: Felix stops with a panic on it", s)
				ok = false
			}
			pp.Net = n
		}
		out = append(out, pp)
	}
	return out, ok
}

func parseNetOrIP(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", s)
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseFailsafe parses Felix's FailsafeInboundHostPorts/FailsafeOutboundHostPorts
// syntax: a comma-separated list of `port`, `proto:port` or `proto:cidr:port`
// (IPv6 CIDRs in brackets, `tcp:[::/0]:22`); proto is tcp or udp (any case,
// default tcp); port 0-65535; the CIDR may be a bare IP. "none" is the empty
// list; "" gives Felix's defaults.
func ParseFailsafe(s string) ([]policy.ProtoPort, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty failsafe port list (write \"none\" for no failsafe ports, or leave the field unset for the defaults)")
	}
	if strings.EqualFold(strings.TrimSpace(s), "none") {
		return []policy.ProtoPort{}, nil
	}
	out := []policy.ProtoPort{}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		pp, err := parseFailsafeEntry(entry)
		if err != nil {
			return nil, err
		}
		out = append(out, pp)
	}
	return out, nil
}

func parseFailsafeEntry(entry string) (policy.ProtoPort, error) {
	pp := policy.ProtoPort{Protocol: 6}
	var proto, cidr, port string
	if i := strings.IndexByte(entry, '['); i >= 0 {
		j := strings.IndexByte(entry, ']')
		if j < i || i == 0 || entry[i-1] != ':' || j+1 >= len(entry) || entry[j+1] != ':' {
			return pp, fmt.Errorf("invalid failsafe entry %q: expected proto:[ipv6-cidr]:port", entry)
		}
		proto, cidr, port = entry[:i-1], entry[i+1:j], entry[j+2:]
	} else {
		parts := strings.Split(entry, ":")
		switch len(parts) {
		case 1:
			port = parts[0]
		case 2:
			proto, port = parts[0], parts[1]
		case 3:
			proto, cidr, port = parts[0], parts[1], parts[2]
		default:
			return pp, fmt.Errorf("invalid failsafe entry %q: expected port, proto:port or proto:cidr:port (IPv6 CIDRs in brackets)", entry)
		}
	}
	switch strings.ToLower(proto) {
	case "", "tcp":
	case "udp":
		pp.Protocol = 17
	default:
		return pp, fmt.Errorf("invalid failsafe entry %q: protocol must be tcp or udp", entry)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return pp, fmt.Errorf("invalid failsafe entry %q: port must be a number 0-65535", entry)
	}
	pp.Port = uint16(n)
	if cidr != "" {
		if pp.Net, err = parseNetOrIP(cidr); err != nil {
			return pp, fmt.Errorf("invalid failsafe entry %q: %v", entry, err)
		}
	}
	return pp, nil
}

var engineFields = []string{"queueBase", "queues", "failureMode", "markMask", "deadline", "traceFile",
	"traceBuffer", "denyCacheSize", "denyCacheTTL", "iptablesBackend", "metricsAddress",
	"metricsAllowRemote", "denyRegionSize", "denyRegionTTL"}

func (c *conv) runtime(n *node) Runtime {
	rt := DefaultRuntime()
	if n == nil || !c.fields(n, engineFields, nil) {
		return rt
	}
	intIn := func(k string, lo, hi int64) (int64, bool) {
		v, ok := c.integer(n.get(k))
		if ok && (v < lo || v > hi) {
			c.errf(n.get(k), "%s must be between %d and %d", k, lo, hi)
			return 0, false
		}
		return v, ok
	}
	dur := func(k string, min time.Duration) (time.Duration, bool) {
		s, ok := c.str(n.get(k))
		if !ok {
			return 0, false
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			c.errf(n.get(k), "invalid duration %q (write e.g. \"200ms\" or \"2s\")", s)
			return 0, false
		}
		if d < min {
			c.errf(n.get(k), "%s must be at least %v", k, min)
			return 0, false
		}
		return d, true
	}
	if v, ok := intIn("queueBase", 0, 65535); ok {
		rt.QueueBase = uint16(v)
	}
	if v, ok := intIn("queues", 0, 1024); ok {
		rt.Queues = int(v)
	}
	if s, ok := c.str(n.get("failureMode")); ok {
		switch s {
		case "closed":
			rt.FailureMode = FailClosed
		case "open":
			rt.FailureMode = FailOpen
		default:
			c.errf(n.get("failureMode"), "failureMode must be \"closed\" or \"open\", not %q", s)
		}
	}
	if v := n.get("markMask"); isSet(v) {
		var m uint64
		var err error
		switch v.kind {
		case kInt:
			if v.i < 0 {
				err = fmt.Errorf("negative")
			}
			m = uint64(v.i)
		case kString:
			m, err = strconv.ParseUint(v.s, 0, 64)
		default:
			err = fmt.Errorf("must be an integer or a string such as \"0x00ff0000\", not %s", v.kind)
		}
		switch {
		case err != nil:
			c.errf(v, "invalid markMask: %v", err)
		case m > 0xffffffff:
			c.errf(v, "markMask must fit in 32 bits")
		case bits.OnesCount64(m) < MarkBitsNeeded:
			c.errf(v, "markMask must have at least %d bits set (nfgate's per-stage decided, accept and re-check bits live there); %#x has %d", MarkBitsNeeded, m, bits.OnesCount64(m))
		default:
			rt.MarkMask = uint32(m)
		}
	}
	if d, ok := dur("deadline", time.Millisecond); ok {
		rt.Deadline = d
	}
	if s, ok := c.str(n.get("traceFile")); ok {
		rt.TraceFile = s
	}
	if v, ok := intIn("traceBuffer", 1, 1<<24); ok {
		rt.TraceBuffer = int(v)
	}
	if v, ok := intIn("denyCacheSize", 0, 1<<24); ok {
		rt.DenyCacheSize = int(v)
	}
	if d, ok := dur("denyCacheTTL", 0); ok {
		rt.DenyCacheTTL = d
	}
	if v, ok := intIn("denyRegionSize", 0, 65536); ok {
		rt.DenyRegionSize = int(v)
	}
	if d, ok := dur("denyRegionTTL", time.Second); ok {
		if d > time.Hour {
			c.errf(n.get("denyRegionTTL"), "denyRegionTTL must be at most 1h")
		} else {
			rt.DenyRegionTTL = d
		}
	}
	if s, ok := c.str(n.get("iptablesBackend")); ok {
		switch s {
		case "auto", "nft", "legacy":
			rt.IptablesBackend = s
		default:
			c.errf(n.get("iptablesBackend"), "iptablesBackend must be auto, nft or legacy, not %q", s)
		}
	}
	rt.MetricsAllowRemote = c.boolean(n.get("metricsAllowRemote"))
	if s, ok := c.str(n.get("metricsAddress")); ok && s != "" {
		if host, port, err := net.SplitHostPort(s); err != nil || port == "" {
			c.errf(n.get("metricsAddress"), "metricsAddress must be host:port, e.g. \"127.0.0.1:9464\"")
		} else if !rt.MetricsAllowRemote && !IsLoopbackHost(host) {
			c.errf(n.get("metricsAddress"), "metricsAddress %q is not a loopback address: metrics would be reachable from the network; use 127.0.0.1 or [::1], or set metricsAllowRemote = true", s)
		} else {
			rt.MetricsAddress = s
		}
	}
	return rt
}
