package datastore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/datastore/etcdtest"
	"github.com/nfgate/nfgate/policy/selector"
)

// The round trip a fleet's policy takes: a Calico user's YAML, `calicoctl
// apply` (v3.32.1, etcdv3) into a real etcd, nfgate's datastore decoding,
// the loader. For every resource kind the result must be the policy model
// nfgate builds from the same YAML file loaded directly: same resources,
// same settings, same warnings and errors.

// roundTripCases are the YAML files applied, each with the resources it
// needs. The guides' files (examples/) come first.
func roundTripCases(t *testing.T) []string {
	guides, _ := filepath.Glob("../../examples/*/*.yaml")
	own, _ := filepath.Glob("testdata/calicoctl/*.yaml")
	if len(guides) == 0 || len(own) == 0 {
		t.Fatal("no YAML cases found")
	}
	return append(guides, own...)
}

// knownDifferences are cases where calicoctl's own defaulting changes the
// meaning of what was written, so loading the file directly (without that
// defaulting) differs from Calico. Each is a deviation of the direct path,
// not of the datastore path, and is reported rather than hidden.
// (None left: a Tier without order, which calicoctl stores with order
// 1000000, is now defaulted the same way when loaded directly.)
var knownDifferences = map[string]string{}

func TestCalicoctlRoundTrip(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	ctl := srv.NeedCalicoctl(t)
	cli := srv.Client(t)
	dir := t.TempDir()
	main := filepath.Join(dir, "nfgate.toml")
	if err := os.WriteFile(main, []byte("[gateway]\nnodeName = \"gw1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// calicoctl's first write initialises the datastore (ClusterInformation,
	// the tiers default, kube-admin and kube-baseline): keep that apart
	// from the cases.
	ctl.Apply(t, "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: warm-up}\nspec: {}\n")
	ctl.Delete(t, "globalnetworkset", "warm-up")
	init := listAll(t, cli)
	for _, k := range []string{"clusterinformations/default", "tiers/default", "tiers/kube-admin", "tiers/kube-baseline"} {
		if _, ok := init[pfx+k]; !ok {
			t.Errorf("calicoctl's first write did not create %s", k)
		}
	}

	var whole []string            // the files whose resources make the whole set
	writer := map[string]string{} // key -> the file that wrote it last
	for _, file := range roundTripCases(t) {
		name := strings.TrimSuffix(filepath.Base(file), ".yaml")
		if strings.HasPrefix(file, "../../examples/") {
			name = "guide " + filepath.Base(filepath.Dir(file)) + "/" + name
		}
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			before := listAll(t, cli)
			ctl.Apply(t, string(data))
			after := listAll(t, cli)
			var written []string
			for k, r := range after {
				if b, ok := before[k]; !ok || b.ModRevision != r.ModRevision {
					written = append(written, k)
				}
			}
			sort.Strings(written)
			t.Logf("calicoctl wrote %s", strings.Join(written, ", "))
			for _, k := range written {
				if !isPolicy(after[k].Kind) {
					t.Errorf("calicoctl wrote %s, which nfgate does not load", k)
				}
			}
			for _, k := range written {
				if f, ok := writer[k]; ok {
					// Replaced: the earlier file no longer describes the store.
					whole = slices.DeleteFunc(whole, func(w string) bool { return w == f })
				}
				writer[k] = file
			}
			got := loadKeys(t, main, after, written)
			want := loadFile(t, dir, main, file)
			if why, ok := knownDifferences[filepath.Base(file)]; ok {
				if d := sameModel(want, got); d == "" {
					t.Errorf("known difference no longer seen (%s): remove it from knownDifferences", why)
				}
				// Out of the whole set, which is compared with the files.
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				for _, k := range written {
					if _, err := cli.Delete(ctx, k); err != nil {
						t.Fatal(err)
					}
					delete(writer, k)
				}
				if !t.Failed() {
					t.Skipf("known difference of the direct path: %s\n%s", why, sameModel(want, got))
				}
				return
			}
			if d := sameModel(want, got); d != "" {
				t.Fatalf("calicoctl apply -> etcd -> nfgate differs from loading %s directly:\n%s", file, d)
			}
			if got.Policy != nil {
				if _, err := policy.Compile(got.Policy); err != nil {
					t.Errorf("compile: %v", err)
				}
			}
			whole = append(whole, file)
		})
	}

	// The whole datastore, as a gateway reads it (ClusterInformation and
	// the built-in tiers included), against every file loaded at once.
	t.Run("whole datastore", func(t *testing.T) {
		all := listAll(t, cli)
		keys := make([]string, 0, len(all))
		for k := range all {
			keys = append(keys, k)
		}
		docs, _, errs := documents(all, "gw1")
		if len(errs) > 0 {
			t.Fatalf("decoding: %v", errs)
		}
		if d := notReady("/calico", all); d != nil {
			t.Fatalf("calicoctl's datastore is not ready for nfgate: %s", d)
		}
		got, gotErr := config.LoadWith(main, docs)
		want := loadFile(t, dir, main, whole...)
		if d := sameModel(want, &loaded{got, gotErr}); d != "" {
			t.Fatalf("the whole datastore differs from the files loaded directly:\n%s", d)
		}
		if gotErr != nil {
			t.Fatalf("the whole datastore does not load: %v", gotErr)
		}
		if _, err := policy.Compile(got.Policy); err != nil {
			t.Errorf("compile: %v", err)
		}
		t.Logf("%d keys, %d warnings", len(keys), len(got.Warnings))

		// What `calicoctl get KIND -o yaml` prints (status, uid,
		// resourceVersion, calicoctl's defaults and all) loads, as a local
		// file, to the same model.
		var export strings.Builder
		for _, k := range []string{"tiers", "globalnetworkpolicies", "stagedglobalnetworkpolicies", "hostendpoints", "globalnetworksets", "networksets", "profiles", "felixconfigurations", "nodes"} {
			args := []string{"get", k, "-o", "yaml"}
			if k == "networksets" {
				args = append(args, "--all-namespaces")
			}
			out, err := ctl.Run("", args...)
			if err != nil {
				t.Fatalf("calicoctl get %s: %v\n%s", k, err, out)
			}
			export.WriteString("---\n" + out)
		}
		file := filepath.Join(dir, "export.yaml")
		if err := os.WriteFile(file, []byte(export.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		exp := loadFile(t, dir, main, file)
		if exp.err != nil {
			t.Fatalf("calicoctl's export does not load: %v", exp.err)
		}
		if d := firstDiff(reflect.ValueOf(comparable(exp.Policy)), reflect.ValueOf(comparable(got.Policy)), "Config"); d != "" {
			t.Errorf("calicoctl's export loaded directly differs from the datastore: %s", d)
		}
	})
}

type loaded struct {
	*config.Loaded
	err error
}

// listAll reads every key nfgate decodes.
func listAll(t *testing.T, cli *clientv3.Client) map[string]Resource {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, pfx, clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]Resource{}
	for _, kv := range resp.Kvs {
		if r, ok := newResource("/calico", string(kv.Key), kv.Value, kv.ModRevision); ok {
			res[r.Key] = r
		}
	}
	return res
}

// loadKeys loads the stored resources at keys as a gateway does.
func loadKeys(t *testing.T, main string, all map[string]Resource, keys []string) *loaded {
	t.Helper()
	sub := map[string]Resource{}
	for _, k := range keys {
		sub[k] = all[k]
	}
	docs, _, errs := documents(sub, "gw1")
	if len(errs) > 0 {
		t.Fatalf("decoding what calicoctl wrote: %v", errs)
	}
	l, err := config.LoadWith(main, docs)
	return &loaded{l, err}
}

// loadFile loads files directly: a main file like main that includes
// them.
func loadFile(t *testing.T, dir, main string, files ...string) *loaded {
	t.Helper()
	m, err := os.ReadFile(main)
	if err != nil {
		t.Fatal(err)
	}
	var inc []string
	for _, f := range files {
		abs, err := filepath.Abs(f)
		if err != nil {
			t.Fatal(err)
		}
		inc = append(inc, fmt.Sprintf("%q", abs))
	}
	p := filepath.Join(dir, "direct.toml")
	if err := os.WriteFile(p, []byte("include = ["+strings.Join(inc, ", ")+"]\n"+string(m)), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := config.Load(p)
	return &loaded{l, err}
}

// sameModel compares two loads: the policy model (positions aside, tiers
// that hold no policy aside: they change no verdict), the settings, and
// the warnings and errors (without file and position). "" when equal.
func sameModel(want, got *loaded) string {
	var diffs []string
	if w, g := diagTexts(want.err, want.Warnings), diagTexts(got.err, got.Warnings); !slices.Equal(w, g) {
		diffs = append(diffs, fmt.Sprintf("diagnostics:\n  direct: %s\n  etcd:   %s", strings.Join(w, "\n          "), strings.Join(g, "\n          ")))
	}
	wp, gp := want.Policy, got.Policy
	if (wp == nil) != (gp == nil) {
		return strings.Join(append(diffs, fmt.Sprintf("policy: direct %v, etcd %v", wp != nil, gp != nil)), "\n")
	}
	if wp != nil {
		wc, gc := comparable(wp), comparable(gp)
		if d := firstDiff(reflect.ValueOf(wc), reflect.ValueOf(gc), "Config"); d != "" {
			diffs = append(diffs, d)
		}
	}
	return strings.Join(diffs, "\n")
}

// comparable is a copy of c with positions cleared and only the tiers
// that hold a policy.
func comparable(c *policy.Config) policy.Config {
	out := *c
	used := map[string]bool{}
	for _, p := range c.Policies {
		t := p.Tier
		if t == "" {
			t = "default"
		}
		used[t] = true
	}
	out.Tiers = nil
	for _, t := range c.Tiers {
		if used[t.Name] {
			out.Tiers = append(out.Tiers, t)
		}
	}
	// The loader keeps the order read (file order, key order from etcd);
	// no verdict depends on it (policies sort by tier, order and name).
	out.Policies = sortedBy(c.Policies, func(p policy.GlobalNetworkPolicy) string { return p.Name })
	out.HostEndpoints = sortedBy(c.HostEndpoints, func(h policy.HostEndpoint) string { return h.Name })
	out.RemoteHostEndpoints = sortedBy(c.RemoteHostEndpoints, func(h policy.HostEndpoint) string { return h.Name })
	out.NetworkSets = sortedBy(c.NetworkSets, func(s policy.GlobalNetworkSet) string { return s.Namespace + "/" + s.Name })
	// Tiers of equal order sort by name when evaluated (policy.tierLess).
	out.Tiers = sortedBy(out.Tiers, func(t policy.Tier) string {
		o := "~"
		if t.Order != nil {
			o = fmt.Sprintf("%030.6f", *t.Order)
		}
		return o + "/" + t.Name
	})
	out.Profiles = sortedBy(c.Profiles, func(p policy.Profile) string { return p.Name })
	clearPos(reflect.ValueOf(&out).Elem())
	return out
}

func sortedBy[T any](s []T, name func(T) string) []T {
	out := slices.Clone(s)
	slices.SortStableFunc(out, func(a, b T) int { return strings.Compare(name(a), name(b)) })
	return out
}

var posType = reflect.TypeOf(policy.Pos{})

func clearPos(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == posType {
			if v.CanSet() {
				v.Set(reflect.Zero(posType))
			}
			return
		}
		for i := 0; i < v.NumField(); i++ {
			if v.Type().Field(i).IsExported() {
				clearPos(v.Field(i))
			}
		}
	case reflect.Slice:
		if v.Len() > 0 && v.CanSet() {
			c := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
			reflect.Copy(c, v)
			v.Set(c)
		}
		for i := 0; i < v.Len(); i++ {
			clearPos(v.Index(i))
		}
	}
}

var selType = reflect.TypeOf(&selector.Selector{})

// firstDiff names the first difference between a and b, comparing
// selectors by their canonical text.
func firstDiff(a, b reflect.Value, path string) string {
	if a.Type() == selType {
		as, bs := "<nil>", "<nil>"
		if !a.IsNil() {
			as = a.Interface().(*selector.Selector).String()
		}
		if !b.IsNil() {
			bs = b.Interface().(*selector.Selector).String()
		}
		if as != bs {
			return fmt.Sprintf("%s: direct %q, etcd %q", path, as, bs)
		}
		return ""
	}
	switch a.Kind() {
	case reflect.Pointer:
		if a.IsNil() || b.IsNil() {
			if a.IsNil() != b.IsNil() {
				return fmt.Sprintf("%s: direct %v, etcd %v", path, show(a), show(b))
			}
			return ""
		}
		return firstDiff(a.Elem(), b.Elem(), path)
	case reflect.Struct:
		for i := 0; i < a.NumField(); i++ {
			if !a.Type().Field(i).IsExported() {
				continue
			}
			if d := firstDiff(a.Field(i), b.Field(i), path+"."+a.Type().Field(i).Name); d != "" {
				return d
			}
		}
		if !a.Type().Field(0).IsExported() && !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return fmt.Sprintf("%s: direct %v, etcd %v", path, a, b)
		}
		return ""
	case reflect.Slice:
		if a.Len() != b.Len() {
			return fmt.Sprintf("%s: direct %d elements %v, etcd %d elements %v", path, a.Len(), show(a), b.Len(), show(b))
		}
		for i := 0; i < a.Len(); i++ {
			if d := firstDiff(a.Index(i), b.Index(i), fmt.Sprintf("%s[%d]", path, i)); d != "" {
				return d
			}
		}
		return ""
	}
	if !reflect.DeepEqual(a.Interface(), b.Interface()) {
		return fmt.Sprintf("%s: direct %v, etcd %v", path, show(a), show(b))
	}
	return ""
}

func show(v reflect.Value) string {
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprintf("%+v", v.Interface())
	}
	return string(b)
}

// sortNodeList sorts the node names of the "host endpoint(s) for other
// nodes (a, b)" warning, listed in the order read.
func sortNodeList(msg string) string {
	const mark = " for other nodes ("
	i := strings.Index(msg, mark)
	if i < 0 {
		return msg
	}
	rest := msg[i+len(mark):]
	j := strings.IndexByte(rest, ')')
	if j < 0 {
		return msg
	}
	names := strings.Split(rest[:j], ", ")
	sort.Strings(names)
	return msg[:i+len(mark)] + strings.Join(names, ", ") + rest[j:]
}

// diagTexts are errors and warnings without file and position, sorted.
func diagTexts(err error, warns []config.Diag) []string {
	var out []string
	var ce config.Errors
	if err != nil && !errors.As(err, &ce) {
		out = append(out, "error: "+err.Error())
	}
	for _, d := range ce {
		out = append(out, "error: "+d.Resource+": "+d.Field+": "+d.Msg)
	}
	for _, d := range warns {
		out = append(out, "warning: "+d.Resource+": "+d.Field+": "+sortNodeList(d.Msg))
	}
	sort.Strings(out)
	return out
}
