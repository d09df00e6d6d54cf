package config

import (
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// Datastore is the main file's [datastore] table: where a fleet's shared
// Calico resources live (docs/fleet.md). Paths are resolved against the
// main file's directory.
type Datastore struct {
	Type      string   // "etcdv3", the only type
	Endpoints []string // client URLs, e.g. "https://198.18.0.1:2379"
	CAFile    string   // CA bundle that signs the servers' certificates
	CertFile  string   // client certificate (with KeyFile)
	KeyFile   string
	// Prefix is the root of Calico's keys; "/calico" as in Calico.
	Prefix string
	// CacheFile holds the last good resource set, used when the datastore
	// is unreachable at start.
	CacheFile string
	// StatusTTL is the lease on this gateway's status key: a gateway that
	// stops refreshing it disappears from `nfgate status` after this long.
	StatusTTL time.Duration
	// NodeName is [gateway] nodeName: the one Node resource read (its labels
	// select FelixConfigurations with a nodeSelector). Not a [datastore] key.
	NodeName string
}

// Default values of [datastore].
const (
	DefaultDatastorePrefix    = "/calico"
	DefaultDatastoreCacheFile = "/var/lib/nfgate/datastore-cache.json"
	DefaultStatusTTL          = 30 * time.Second
)

var datastoreFields = []string{"type", "endpoints", "caFile", "certFile", "keyFile", "prefix", "cacheFile", "statusTTL"}

func (c *conv) datastore(n *node, dir string) *Datastore {
	if n == nil {
		return nil
	}
	ds := &Datastore{Type: "etcdv3", Prefix: DefaultDatastorePrefix, CacheFile: DefaultDatastoreCacheFile, StatusTTL: DefaultStatusTTL}
	if !c.fields(n, datastoreFields, nil) {
		return ds
	}
	if s, ok := c.str(n.get("type")); ok && s != "etcdv3" {
		c.errf(n.get("type"), "datastore type must be \"etcdv3\", not %q", s)
	}
	eps := n.get("endpoints")
	if !isSet(eps) {
		c.d.add(false, n.pos, "", joinPath(n.fpath(), "endpoints"), "endpoints must be specified (e.g. [\"https://198.18.0.1:2379\"])")
	}
	for _, e := range c.list(eps) {
		s, ok := c.str(e)
		if !ok {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" && u.Path != "/" {
			c.errf(e, "endpoint %q must be a URL like \"https://host:2379\"", s)
			continue
		}
		ds.Endpoints = append(ds.Endpoints, s)
	}
	if isSet(eps) && eps.kind == kList && len(eps.list) == 0 {
		c.errf(eps, "endpoints must name at least one etcd server")
	}
	file := func(k string) string {
		s, ok := c.str(n.get(k))
		if !ok {
			return ""
		}
		if s == "" {
			c.errf(n.get(k), "%s must not be empty (leave it out instead)", k)
			return ""
		}
		if !filepath.IsAbs(s) {
			s = filepath.Join(dir, s)
		}
		return s
	}
	ds.CAFile, ds.CertFile, ds.KeyFile = file("caFile"), file("certFile"), file("keyFile")
	if (ds.CertFile == "") != (ds.KeyFile == "") && isSet(n.get("certFile")) != isSet(n.get("keyFile")) {
		c.d.add(false, n.pos, "", n.fpath(), "certFile and keyFile go together: set both or neither")
	}
	if s, ok := c.str(n.get("prefix")); ok {
		if !strings.HasPrefix(s, "/") || len(s) > 1 && strings.HasSuffix(s, "/") {
			c.errf(n.get("prefix"), "prefix must start with / and not end with one (Calico's is \"/calico\")")
		} else {
			ds.Prefix = s
		}
	}
	if s := file("cacheFile"); s != "" {
		ds.CacheFile = s
	}
	if s, ok := c.str(n.get("statusTTL")); ok {
		d, err := time.ParseDuration(s)
		switch {
		case err != nil:
			c.errf(n.get("statusTTL"), "invalid duration %q (write e.g. \"30s\")", s)
		case d < 5*time.Second || d%time.Second != 0:
			c.errf(n.get("statusTTL"), "statusTTL must be whole seconds, at least 5s")
		default:
			ds.StatusTTL = d
		}
	}
	return ds
}

// Document is a Calico v3 resource from outside the local files: one YAML
// or JSON document (Calico's datastore stores JSON). Name, e.g. the etcd
// key, is the "file" of its diagnostics.
type Document struct {
	Name string
	Data []byte
}

// LoadWith loads the configuration at path like Load, then the extra
// documents after the local files, through the same validation. Documents
// count in Files and Hash. Their diagnostics name the document and carry no
// line or column (the datastore's JSON is one line). A FelixConfiguration
// among them never overrides a field set in [gateway]: the local value wins
// with a warning. Resource names must be unique across local files and
// documents.
func LoadWith(path string, extra []Document) (*Loaded, error) {
	return loadWith(osSource{}, path, extra)
}

func (l *loader) documents(extra []Document) {
	if len(extra) == 0 {
		return
	}
	l.remoteNames = map[string]bool{}
	l.remote = true
	for _, doc := range extra {
		l.files = append(l.files, doc.Name)
		l.data = append(l.data, doc.Data)
		l.remoteNames[doc.Name] = true
		l.yamlFile(doc.Name, doc.Data)
	}
	l.remote = false
}

// unposition drops line and column from the documents' diagnostics.
func (l *loader) unposition() {
	for _, ds := range [][]Diag{l.d.errs, l.d.warns} {
		for i := range ds {
			if l.remoteNames[ds[i].File] {
				ds[i].Line, ds[i].Col = 0, 0
			}
		}
	}
}
