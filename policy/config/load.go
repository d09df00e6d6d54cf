package config

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/nfgate/nfgate/policy"
)

// Loaded is a loaded configuration.
type Loaded struct {
	// Policy is the validated model; nil when loading failed.
	Policy  *policy.Config
	Runtime Runtime
	// Files is every file read, in the order read (the main file first, then
	// includes depth-first).
	Files []string
	// Hash is SHA-256 over the files' bytes in Files order: it changes
	// exactly when what was loaded changes.
	Hash [32]byte
	// Warnings are problems that do not stop the load (ignored
	// FelixConfiguration fields, host endpoints of other nodes, ...).
	Warnings []Diag
	// Datastore is the main file's [datastore] table; nil when absent.
	Datastore *Datastore
}

// Load reads the TOML configuration at path and everything it includes.
// On failure the error is an Errors holding every problem found, and the
// returned Loaded (never nil) still has Files, Hash and Warnings.
func Load(path string) (*Loaded, error) {
	return load(osSource{}, path)
}

// LoadBytes loads a configuration held in memory: data is the file called
// name (.toml, or .yaml/.yml/.json for a manifest on its own). Includes are
// not read from disk; they fail as missing files.
func LoadBytes(name string, data []byte) (*Loaded, error) {
	return load(memSource{filepath.Clean(name): data}, name)
}

// LoadFiles loads a configuration held in memory as several files: files
// maps each file's path, as Loaded.Files recorded it, to its bytes, and
// main is the main file's path. Includes and globs resolve among these
// files only. (nfgate run starts from such a copy, its last good
// configuration, when the files on disk are rejected.)
func LoadFiles(main string, files map[string][]byte) (*Loaded, error) {
	m := memSource{}
	for k, v := range files {
		m[filepath.Clean(k)] = v
	}
	return load(m, main)
}

// ReadFile reads a configuration file the way Load does: a regular file
// (symbolic links followed) of at most MaxFileBytes, never blocking.
func ReadFile(name string) ([]byte, error) { return readRegular(name, MaxFileBytes) }

// ReadFileMax is ReadFile with another size limit.
func ReadFileMax(name string, max int64) ([]byte, error) { return readRegular(name, max) }

// source is where files come from.
type source interface {
	ReadFile(name string) ([]byte, error)
	Glob(pattern string) ([]string, error)
}

type osSource struct{}

// ReadFile reads a regular file (symbolic links followed) of at most
// MaxFileBytes; FIFOs, devices and directories are refused without
// blocking (limits.go).
func (osSource) ReadFile(name string) ([]byte, error) { return readRegular(name, MaxFileBytes) }
func (osSource) Glob(p string) ([]string, error)      { return filepath.Glob(p) }

type memSource map[string][]byte

func (m memSource) ReadFile(name string) ([]byte, error) {
	if b, ok := m[filepath.Clean(name)]; ok {
		if int64(len(b)) > MaxFileBytes {
			return nil, fmt.Errorf("file is %d bytes, more than the limit of %d", len(b), MaxFileBytes)
		}
		return b, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

func (m memSource) Glob(p string) ([]string, error) {
	if _, err := path.Match(p, ""); err != nil {
		return nil, err
	}
	var out []string
	for k := range m {
		if ok, _ := filepath.Match(p, k); ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

type loader struct {
	src   source
	d     diags
	files []string
	data  [][]byte
	stack []string
	seen  map[string]bool
	res   []*resIn
	gw    *node
	eng   *node
	ds    *node
	// remote is set while reading datastore documents (LoadWith), whose
	// names are remoteNames.
	remote      bool
	remoteNames map[string]bool
	// mainParsed: the main file was read and parsed. Without it, [gateway]
	// and [engine] are not looked at (a syntax error is the whole story).
	mainParsed bool
	// What this load may still read and build (limits.go).
	budget   int
	bytes    int64
	tooLarge bool // a byte or file limit was hit: later files are not read
}

func load(src source, mainPath string) (*Loaded, error) {
	return loadWith(src, mainPath, nil)
}

func loadWith(src source, mainPath string, extra []Document) (*Loaded, error) {
	l := &loader{src: src, seen: map[string]bool{}, budget: MaxValues}
	l.file(mainPath, nil, true)
	l.documents(extra)

	c := &conv{d: &l.d}
	col := &collected{seen: map[string]policy.Pos{}, tierPos: map[string]*node{}}
	for _, r := range l.res {
		if r.kind == kindFelix {
			c.res = r.label()
			name, _ := c.str(r.name)
			if !isSet(r.name) {
				c.d.add(false, r.pos, c.res, "metadata.name", "name must be specified")
			} else if key := kindFelix + "/" + name; col.seen[key] != (policy.Pos{}) {
				c.errf(r.name, "duplicate FelixConfiguration name %q", name)
			} else {
				col.seen[key] = r.pos
			}
			col.felix = append(col.felix, felixIn{name: name, spec: r.spec, pos: r.pos, remote: r.remote, created: c.created(r)})
			c.res = ""
			continue
		}
		c.resource(r, col)
	}
	var st policy.Settings
	var rt Runtime
	var ds *Datastore
	if l.mainParsed {
		st = c.settingsFrom(l.gw, col.felix, col.nodes)
		rt = c.runtime(l.eng)
		ds = c.datastore(l.ds, filepath.Dir(mainPath))
		if ds != nil {
			ds.NodeName = st.NodeName
		}
	}
	cfg := finish(c, col, st, mainPath)
	if n := countRules(cfg); n > MaxRules {
		l.d.add(false, policy.Pos{File: filepath.Clean(mainPath)}, "", "",
			"the configuration has %d rules, more than nfgate's limit of %d", n, MaxRules)
	}

	out := &Loaded{Runtime: rt, Files: l.files, Datastore: ds}
	h := sha256.New()
	for _, b := range l.data {
		h.Write(b)
	}
	copy(out.Hash[:], h.Sum(nil))
	l.unposition()
	for _, ds := range [][]Diag{l.d.errs, l.d.warns} {
		for i := range ds {
			ds[i].sanitize()
		}
	}
	sortDiags(l.d.warns, l.files)
	sortDiags(l.d.errs, l.files)
	out.Warnings = l.d.warns
	if len(l.d.errs) > 0 {
		return out, Errors(l.d.errs)
	}
	out.Policy = cfg
	return out, nil
}

// file reads one file; from is the include entry naming it (nil for the main file).
func (l *loader) file(name string, from *node, main bool) {
	clean := filepath.Clean(name)
	key := clean
	if abs, err := filepath.Abs(clean); err == nil {
		key = abs
	}
	at := func(format string, args ...any) {
		if from != nil {
			l.d.add(false, from.pos, "", from.fpath(), format, args...)
		} else {
			l.d.add(false, policy.Pos{File: clean}, "", "", format, args...)
		}
	}
	for i, s := range l.stack {
		if s == key {
			chain := append(append([]string{}, l.stack[i:]...), key)
			for j := range chain {
				chain[j] = filepath.Base(chain[j])
			}
			at("include cycle: %s", strings.Join(chain, " -> "))
			return
		}
	}
	if l.seen[key] {
		at("%s is included more than once", clean)
		return
	}
	l.seen[key] = true
	ext := strings.ToLower(filepath.Ext(clean))
	if ext != ".toml" && ext != ".yaml" && ext != ".yml" && ext != ".json" {
		at("%s: unsupported file type %q (want .toml, .yaml, .yml or .json)", clean, ext)
		return
	}
	if l.tooLarge {
		return
	}
	if len(l.files) >= MaxFiles {
		at("%s: more than %d files in the configuration (nfgate's limit)", clean, MaxFiles)
		l.tooLarge = true
		return
	}
	data, err := l.src.ReadFile(clean)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		at("cannot read %s: %v", clean, err)
		return
	}
	if l.bytes += int64(len(data)); l.bytes > MaxTotalBytes {
		at("%s: the configuration's files add up to more than %d bytes (nfgate's limit)", clean, MaxTotalBytes)
		l.tooLarge = true
		return
	}
	l.files = append(l.files, clean)
	l.data = append(l.data, data)
	l.stack = append(l.stack, key)
	defer func() { l.stack = l.stack[:len(l.stack)-1] }()

	if ext == ".toml" {
		l.tomlFile(clean, data, main)
	} else {
		if main {
			l.d.add(false, policy.Pos{File: clean}, "", "", "the main configuration must be a TOML file with a [gateway] table; include Calico YAML manifests from it")
		}
		l.yamlFile(clean, data)
	}
}

func (l *loader) tomlFile(name string, data []byte, main bool) {
	if d := prescanTOML(name, data, &l.budget); d != nil {
		l.d.errs = append(l.d.errs, *d)
		return
	}
	root, d := parseTOML(name, data)
	if d != nil {
		l.d.errs = append(l.d.errs, *d)
		return
	}
	if main {
		l.mainParsed = true
	}
	c := &conv{d: &l.d}
	allowed := []string{"include", "gateway", "engine", "datastore"}
	for k := range tomlResourceKeys {
		allowed = append(allowed, k)
	}
	c.fields(root, allowed, nil)
	for _, v := range root.kids {
		k := v.key
		switch k {
		case "gateway", "engine", "datastore":
			if !main {
				c.errf(v, "[%s] is only allowed in the main configuration file", k)
				continue
			}
			switch k {
			case "gateway":
				l.gw = v
			case "engine":
				l.eng = v
			default:
				l.ds = v
			}
		}
		kind, ok := tomlResourceKeys[k]
		if !ok {
			continue
		}
		if v.kind == kMap {
			c.errf(v, "write [[%s]] (double brackets): each entry of the array is one %s", k, kind)
			continue
		}
		for _, e := range c.list(v) {
			setPaths(e, "")
			r := &resIn{kind: kind, spec: e, pos: e.pos, meta: []string{"name", "labels"}}
			if namespaced(kind) {
				r.meta = append(r.meta, "namespace")
			}
			if e.kind == kMap {
				r.name, r.labels = e.get("name"), e.get("labels")
				if namespaced(kind) {
					r.namespace = e.get("namespace")
					c.str(r.namespace)
				}
			}
			l.res = append(l.res, r)
		}
	}
	inc := root.get("include")
	if !isSet(inc) {
		return
	}
	var entries []*node
	if inc.kind == kString {
		entries = []*node{inc}
	} else {
		entries = c.list(inc)
	}
	dir := filepath.Dir(name)
	for _, e := range entries {
		p, ok := c.str(e)
		if !ok {
			continue
		}
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if !strings.ContainsAny(p, "*?[") {
			l.file(p, e, false)
			continue
		}
		matches, err := l.src.Glob(p)
		if err != nil {
			c.errf(e, "bad include pattern %q: %v", p, err)
			continue
		}
		if len(matches) == 0 {
			c.warnf(e, "include pattern %q matches no files", p)
		}
		for _, m := range matches {
			l.file(m, e, false)
		}
	}
}

var yamlKinds = map[string]bool{kindGNP: true, kindSGNP: true, kindHEP: true, kindGNS: true, kindNS: true, kindProf: true,
	kindTier: true, kindFelix: true, kindNode: true}

// refusedKinds say why a kind Calico has is not read.
var refusedKinds = map[string]string{
	"NetworkPolicy": "a NetworkPolicy is namespaced: Calico applies it only to endpoints labelled projectcalico.org/namespace with " +
		"its namespace (a host endpoint only if it carries that label), in the normal chains; nfgate does not read it: write a " +
		"GlobalNetworkPolicy",
	"StagedNetworkPolicy": "a StagedNetworkPolicy never changes a host endpoint's verdict in Calico (it is namespaced, so it can only be " +
		"in the normal chains, where a staged policy adds nothing): nfgate does not read it",
	"StagedKubernetesNetworkPolicy": "a StagedKubernetesNetworkPolicy never changes a host endpoint's verdict in Calico (it is a staged " +
		"Kubernetes policy, in the normal chains only, where a staged policy adds nothing): nfgate does not read it",
}

const supportedKinds = "GlobalNetworkPolicy, StagedGlobalNetworkPolicy, HostEndpoint, GlobalNetworkSet, NetworkSet, Profile, Tier, FelixConfiguration and Node"

func (l *loader) yamlFile(name string, data []byte) {
	if d := prescanYAML(name, data, &l.budget); d != nil {
		l.d.errs = append(l.d.errs, *d)
		return
	}
	docs, d := parseYAML(name, data)
	for _, doc := range docs {
		l.yamlDoc(doc, 0)
	}
	if d != nil {
		l.d.errs = append(l.d.errs, *d)
	}
}

var metaFields = []string{"name", "labels", "annotations", "resourceVersion", "uid", "creationTimestamp", "generation"}

func (l *loader) yamlDoc(doc *node, depth int) {
	c := &conv{d: &l.d}
	if doc.kind != kMap {
		c.errf(doc, "a Calico manifest document must be a mapping with apiVersion, kind, metadata and spec, not %s", doc.kind)
		return
	}
	kind, _ := c.str(doc.get("kind"))
	if name := doc.get("metadata").get("name"); name != nil && name.kind == kString && kind != "" {
		c.res = kind + "/" + name.s
	}
	if av := doc.get("apiVersion"); !isSet(av) {
		c.errf(doc, "apiVersion must be specified (projectcalico.org/v3)")
	} else if s, ok := c.str(av); ok && s != "projectcalico.org/v3" {
		c.errf(av, "apiVersion must be projectcalico.org/v3, not %q", s)
	}
	switch {
	case kind == "":
		if !isSet(doc.get("kind")) {
			c.errf(doc, "kind must be specified")
		}
		return
	case kind == "List" || strings.HasSuffix(kind, "List") && yamlKinds[strings.TrimSuffix(kind, "List")]:
		c.fields(doc, []string{"apiVersion", "kind", "metadata", "items"}, nil)
		if depth > 0 {
			c.errf(doc.get("kind"), "a List cannot contain another List")
			return
		}
		for _, it := range c.list(doc.get("items")) {
			setPaths(it, "")
			l.yamlDoc(it, depth+1)
		}
		return
	case refusedKinds[kind] != "":
		c.errf(doc.get("kind"), "%s", refusedKinds[kind])
		return
	case !yamlKinds[kind]:
		c.errf(doc.get("kind"), "kind %s is not supported (nfgate reads %s)", kind, supportedKinds)
		return
	}
	// status is the subresource Calico's components write (calicoctl get
	// -o yaml shows Tiers with status: {}); it says nothing about policy.
	c.fields(doc, []string{"apiVersion", "kind", "metadata", "spec", "status"}, nil)
	r := &resIn{kind: kind, pos: doc.pos, remote: l.remote}
	meta := doc.get("metadata")
	allowed, unsupported := metaFields, map[string]string{"namespace": kind + " is a global resource"}
	if namespaced(kind) {
		allowed, unsupported = append([]string{"namespace"}, metaFields...), nil
	}
	if !isSet(meta) {
		c.errf(doc, "metadata.name must be specified")
	} else if c.fields(meta, allowed, unsupported) {
		r.name, r.labels, r.annots = meta.get("name"), meta.get("labels"), meta.get("annotations")
		r.created = meta.get("creationTimestamp")
		if namespaced(kind) {
			r.namespace = meta.get("namespace")
			c.str(r.namespace)
		}
		if r.name == nil {
			c.errf(meta, "name must be specified")
			r.name = &node{kind: kNull, pos: meta.pos, path: "metadata.name"}
		}
		if a := meta.get("annotations"); isSet(a) && a.kind != kMap {
			c.errf(a, "annotations must be a mapping")
		}
	}
	if s := doc.get("spec"); isSet(s) {
		r.spec = s
	}
	l.res = append(l.res, r)
}

// countRules counts the rules of every policy and profile.
func countRules(cfg *policy.Config) int {
	n := 0
	for _, p := range cfg.Policies {
		n += len(p.Ingress) + len(p.Egress)
	}
	for _, p := range cfg.Profiles {
		n += len(p.Ingress) + len(p.Egress)
	}
	return n
}

// finish checks references across resources and assembles the Config.
func finish(c *conv, col *collected, st policy.Settings, mainPath string) *policy.Config {
	cfg := &policy.Config{Settings: st, NetworkSets: col.sets, Tiers: col.tiers}

	declared := map[string]bool{}
	for _, t := range col.tiers {
		declared[t.Name] = true
	}
	need := map[string]bool{"default": true}
	for _, p := range append(append([]policy.GlobalNetworkPolicy{}, col.policies...), col.stagedDeletes...) {
		c.res = kindGNP + "/" + p.Name
		if p.Staged {
			c.res = kindSGNP + "/" + p.Name
		}
		if declared[p.Tier] {
			continue
		}
		if _, ok := builtinTiers[p.Tier]; ok {
			need[p.Tier] = true
			continue
		}
		c.d.add(false, p.Pos, c.res, "tier", "tier %q does not exist (declare it as a Tier)", p.Tier)
	}
	for _, name := range []string{"kube-admin", "default", "kube-baseline"} {
		if need[name] && !declared[name] {
			b := builtinTiers[name]
			o := b.order
			cfg.Tiers = append(cfg.Tiers, policy.Tier{Name: name, Order: &o, DefaultAction: b.action})
		}
	}
	sort.SliceStable(cfg.Tiers, func(i, j int) bool {
		a, b := cfg.Tiers[i].Order, cfg.Tiers[j].Order
		if a == nil || b == nil {
			return a != nil && b == nil
		}
		return *a < *b
	})
	cfg.Policies = col.policies

	profiles := map[string]bool{}
	for _, p := range col.profiles {
		profiles[p.Name] = true
	}
	cfg.Profiles = col.profiles
	const defaultAllow = "projectcalico-default-allow"
	other := 0
	var otherNodes []string
	for _, h := range col.heps {
		c.res = kindHEP + "/" + h.Name
		for _, p := range h.Profiles {
			if profiles[p] {
				continue
			}
			if p == defaultAllow {
				profiles[p] = true
				allow := []policy.Rule{{Action: policy.Allow}}
				cfg.Profiles = append(cfg.Profiles, policy.Profile{Name: defaultAllow, Ingress: allow, Egress: allow})
				continue
			}
			// Felix gives a missing profile drop-all rules (policy.Compile).
			c.d.add(true, h.Pos, c.res, "profiles", "profile %q does not exist: Calico gives it one Deny rule each way, so traffic that reaches the profiles is dropped", p)
		}
		if st.NodeName == "" || h.Node != st.NodeName {
			other++
			if !containsStr(otherNodes, h.Node) {
				otherNodes = append(otherNodes, h.Node)
			}
			cfg.RemoteHostEndpoints = append(cfg.RemoteHostEndpoints, h)
			continue
		}
		for _, pre := range st.InterfacePrefix {
			if h.InterfaceName != "" && h.InterfaceName != "*" && strings.HasPrefix(h.InterfaceName, pre) {
				c.d.add(true, h.Pos, c.res, "interfaceName", "interface %q starts with interfacePrefix %q: nfgate treats it as a workload interface and this host endpoint will not govern it", h.InterfaceName, pre)
			}
		}
		cfg.HostEndpoints = append(cfg.HostEndpoints, h)
	}
	c.res = ""
	if other > 0 && st.NodeName != "" {
		c.d.add(true, policy.Pos{File: filepath.Clean(mainPath)}, "", "", "%d host endpoint(s) for other nodes (%s) govern no interface here (this gateway is node %q); rule selectors still match their expectedIPs", other, strings.Join(otherNodes, ", "), st.NodeName)
	}
	return cfg
}
