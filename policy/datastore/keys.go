package datastore

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/nfgate/nfgate/policy/config"
)

// kinds are the Calico v3 kinds nfgate reads, with the plural that names
// their folder in Calico's etcdv3 key layout (libcalico-go
// backend/model/resource.go), sorted by plural. Policy kinds are handed to
// the loader; ClusterInformation only carries Calico's ready flag
// (ready.go). A namespaced kind's keys are <plural>/<namespace>/<name>.
// Of an Own kind only this gateway's resource is read: the Node named
// nodeName, at <plural>/<nodeName> (its labels select FelixConfigurations
// with a nodeSelector; other nodes' Nodes change nothing here).
var kinds = []struct {
	Kind, Plural string
	Policy       bool
	Namespaced   bool
	Own          bool
}{
	{Kind: "ClusterInformation", Plural: "clusterinformations"},
	{Kind: "FelixConfiguration", Plural: "felixconfigurations", Policy: true},
	{Kind: "GlobalNetworkPolicy", Plural: "globalnetworkpolicies", Policy: true},
	{Kind: "GlobalNetworkSet", Plural: "globalnetworksets", Policy: true},
	{Kind: "HostEndpoint", Plural: "hostendpoints", Policy: true},
	{Kind: "NetworkSet", Plural: "networksets", Policy: true, Namespaced: true},
	{Kind: "Node", Plural: "nodes", Policy: true, Own: true},
	{Kind: "Profile", Plural: "profiles", Policy: true},
	{Kind: "StagedGlobalNetworkPolicy", Plural: "stagedglobalnetworkpolicies", Policy: true},
	{Kind: "Tier", Plural: "tiers", Policy: true},
}

// isPolicy reports whether kind is handed to the loader.
func isPolicy(kind string) bool {
	for _, k := range kinds {
		if k.Kind == kind {
			return k.Policy
		}
	}
	return false
}

func isNamespaced(kind string) bool {
	for _, k := range kinds {
		if k.Kind == kind {
			return k.Namespaced
		}
	}
	return false
}

// ResourcePrefix is the folder of Calico's v3 resources under prefix
// ("/calico" in Calico): global resources are at
// ResourcePrefix(prefix)+plural+"/"+name.
func ResourcePrefix(prefix string) string {
	return prefix + "/resources/v3/projectcalico.org/"
}

// Key is where Calico stores the resource kind/name; a namespaced
// resource's name is "<namespace>/<name>".
func Key(prefix, kind, name string) (string, error) {
	for _, k := range kinds {
		if k.Kind == kind {
			return ResourcePrefix(prefix) + k.Plural + "/" + name, nil
		}
	}
	return "", fmt.Errorf("kind %q is not one nfgate reads", kind)
}

// parseKey returns the kind and name of a resource key (for a namespaced
// kind, name is "<namespace>/<name>").
func parseKey(prefix, key string) (kind, name string, ok bool) {
	rest, ok := strings.CutPrefix(key, ResourcePrefix(prefix))
	if !ok {
		return "", "", false
	}
	plural, name, ok := strings.Cut(rest, "/")
	if !ok || name == "" {
		return "", "", false
	}
	for _, k := range kinds {
		if k.Plural != plural {
			continue
		}
		if k.Namespaced {
			ns, n, ok := strings.Cut(name, "/")
			if !ok || ns == "" || n == "" || strings.Contains(n, "/") {
				return "", "", false
			}
		} else if strings.Contains(name, "/") {
			return "", "", false
		}
		return k.Kind, name, true
	}
	return "", "", false
}

// Metadata fields the API server or calicoctl sets, and the Kubernetes
// object metadata that says nothing about policy; they are dropped before
// validation, so the strict loader sees what a user would write.
// (calicoctl v3.32.1 stores uid and creationTimestamp; it clears
// resourceVersion, generation, finalizers and ownerReferences itself, but
// other clients of the same backend may keep them.)
var serverMeta = []string{"uid", "creationTimestamp", "resourceVersion", "generation", "managedFields", "selfLink",
	"deletionTimestamp", "deletionGracePeriodSeconds", "finalizers", "ownerReferences", "generateName"}

// calicoctlFelixDefaults are the FelixConfiguration fields libcalico-go
// fills in on every create and update when the user left them out
// (clientv3/felixconfig.go setDefaults, the API's kubebuilder default for
// nftablesMode, and bpfLogLevel, which is not omitempty). None means
// anything to nfgate; with exactly these values they are dropped, so that
// a stored FelixConfiguration warns about what its author wrote, not about
// what calicoctl added.
var calicoctlFelixDefaults = map[string]string{
	"floatingIPs":                    "Disabled",
	"bpfConnectTimeLoadBalancing":    "TCP",
	"bpfHostNetworkedNATWithoutCTLB": "Enabled",
	"nftablesMode":                   "Auto",
	"bpfLogLevel":                    "",
}

// annotationMetadata is where Calico's etcdv3 backend keeps a policy's name
// as the user wrote it.
const annotationMetadata = "projectcalico.org/metadata"

// normalise turns a stored value into the document handed to the loader:
// server-set metadata removed, the policy name restored from Calico's
// metadata annotation, checked against the key. Problems are returned as
// diagnostics naming the key.
func normalise(key, kind, name string, value []byte) ([]byte, *config.Diag) {
	bad := func(field, format string, args ...any) *config.Diag {
		return &config.Diag{File: key, Resource: kind + "/" + name, Field: field, Msg: fmt.Sprintf(format, args...)}
	}
	dec := json.NewDecoder(bytes.NewReader(value))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, bad("", "value is not a JSON object: %v (Calico stores v3 resources as JSON)", err)
	}
	if dec.More() {
		return nil, bad("", "value holds more than one JSON value")
	}
	if k, ok := doc["kind"].(string); ok && k != kind {
		return nil, bad("kind", "a %s is stored under the key of a %s", k, kind)
	}
	// The status subresource (Tier and Node carry "status": {}) is
	// written by Calico's components, never by the user; Felix ignores it.
	delete(doc, "status")
	if spec, ok := doc["spec"].(map[string]any); ok && kind == "FelixConfiguration" {
		for f, v := range calicoctlFelixDefaults {
			if s, ok := spec[f].(string); ok && s == v {
				delete(spec, f)
			}
		}
	}
	meta, ok := doc["metadata"].(map[string]any)
	if !ok {
		if doc["metadata"] != nil {
			return nil, bad("metadata", "metadata must be an object")
		}
		meta = map[string]any{}
		doc["metadata"] = meta
	}
	for _, f := range serverMeta {
		// A FelixConfiguration's creationTimestamp decides between
		// selector-scoped ones that select the same node (oldest wins).
		if f == "creationTimestamp" && kind == "FelixConfiguration" {
			continue
		}
		delete(meta, f)
	}
	if ann, ok := meta["annotations"].(map[string]any); ok {
		if s, ok := ann[annotationMetadata].(string); ok {
			var m struct {
				Name string `json:"name"`
			}
			if json.Unmarshal([]byte(s), &m) == nil && m.Name != "" {
				meta["name"] = m.Name
			}
			delete(ann, annotationMetadata)
		}
		if len(ann) == 0 {
			delete(meta, "annotations")
		}
	}
	if isNamespaced(kind) {
		ns, n, _ := strings.Cut(name, "/")
		switch v := meta["namespace"].(type) {
		case nil:
			meta["namespace"] = ns
		case string:
			if v != ns {
				return nil, bad("metadata.namespace", "namespace %q does not match the key's namespace %q", v, ns)
			}
		}
		name = n
	}
	switch n := meta["name"].(type) {
	case nil:
		meta["name"] = name
	case string:
		if n != name && !strings.HasSuffix(name, "."+n) {
			return nil, bad("metadata.name", "name %q does not match the key's name %q", n, name)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, bad("", "cannot re-encode: %v", err)
	}
	return out, nil
}

// Resource is one stored Calico resource.
type Resource struct {
	Key         string `json:"key"`
	Kind        string `json:"kind"`
	Name        string `json:"name"`
	ModRevision int64  `json:"modRevision"`
	// Value is the stored JSON; Data is what the loader reads (normalise),
	// nil when Err is set.
	Value []byte       `json:"-"`
	Data  []byte       `json:"-"`
	Err   *config.Diag `json:"-"`
}

func newResource(prefix, key string, value []byte, modRev int64) (Resource, bool) {
	kind, name, ok := parseKey(prefix, key)
	if !ok {
		return Resource{}, false
	}
	r := Resource{Key: key, Kind: kind, Name: name, ModRevision: modRev, Value: value}
	r.Data, r.Err = normalise(key, kind, name, value)
	return r, true
}

// documents returns the resources in key order as loader documents (policy
// kinds only; of Nodes only the one named nodeName), and the normalisation
// problems of all of them.
func documents(res map[string]Resource, nodeName string) ([]config.Document, []Resource, config.Errors) {
	keys := make([]string, 0, len(res))
	for k := range res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	docs := make([]config.Document, 0, len(keys))
	list := make([]Resource, 0, len(keys))
	var errs config.Errors
	for _, k := range keys {
		r := res[k]
		if r.Kind == "Node" && r.Name != nodeName {
			continue // another gateway's
		}
		list = append(list, r)
		if r.Err != nil {
			errs = append(errs, *r.Err)
			continue
		}
		if isPolicy(r.Kind) {
			docs = append(docs, config.Document{Name: r.Key, Data: r.Data})
		}
	}
	return docs, list, errs
}
