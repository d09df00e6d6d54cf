package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/policy"
)

func writeMain(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "nfgate.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDatastoreTable(t *testing.T) {
	const gw = "[gateway]\nnodeName = \"gw1\"\n"
	for _, tc := range []struct {
		name, toml string
		want       string // substring of the error; "" = loads
	}{
		{"minimal", `endpoints = ["http://127.0.0.1:2379"]`, ""},
		{"everything", `type = "etcdv3"
endpoints = ["https://198.18.0.1:2379", "https://198.18.0.2:2379"]
caFile = "ca.pem"
certFile = "gw.pem"
keyFile = "gw-key.pem"
prefix = "/fleet-a"
cacheFile = "/tmp/x.json"
statusTTL = "10s"`, ""},
		{"no endpoints", `prefix = "/calico"`, "datastore.endpoints: endpoints must be specified"},
		{"empty endpoints", `endpoints = []`, "at least one etcd server"},
		{"endpoint not a URL", `endpoints = ["198.18.0.1:2379"]`, `endpoint "198.18.0.1:2379" must be a URL`},
		{"other type", "type = \"kubernetes\"\nendpoints = [\"http://a:1\"]", `datastore type must be "etcdv3"`},
		{"cert without key", "endpoints = [\"https://a:1\"]\ncertFile = \"c.pem\"", "certFile and keyFile go together"},
		{"prefix with slash", "endpoints = [\"http://a:1\"]\nprefix = \"/calico/\"", "prefix must start with /"},
		{"short ttl", "endpoints = [\"http://a:1\"]\nstatusTTL = \"1s\"", "at least 5s"},
		{"unknown field", "endpoints = [\"http://a:1\"]\nendpoint = \"x\"", `unknown field "endpoint"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeMain(t, gw+"[datastore]\n"+tc.toml+"\n")
			l, err := Load(p)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("load: %v", err)
				}
				if l.Datastore == nil || len(l.Datastore.Endpoints) == 0 {
					t.Fatalf("Datastore = %+v", l.Datastore)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestDatastoreDefaultsAndPaths(t *testing.T) {
	p := writeMain(t, "[gateway]\nnodeName = \"gw1\"\n[datastore]\nendpoints = [\"http://127.0.0.1:2379\"]\ncaFile = \"pki/ca.pem\"\n")
	l, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	ds := l.Datastore
	if ds.Prefix != "/calico" || ds.CacheFile != DefaultDatastoreCacheFile || ds.StatusTTL != 30*time.Second || ds.Type != "etcdv3" {
		t.Errorf("defaults: %+v", ds)
	}
	if want := filepath.Join(filepath.Dir(p), "pki/ca.pem"); ds.CAFile != want {
		t.Errorf("caFile = %q, want %q (relative to the main file)", ds.CAFile, want)
	}
	if l2, _ := Load(writeMain(t, "[gateway]\nnodeName = \"gw1\"\n")); l2.Datastore != nil {
		t.Errorf("no [datastore] table: Datastore = %+v, want nil", l2.Datastore)
	}
}

// Documents as Calico's etcd datastore stores them (JSON, server metadata).
const (
	docGNP = `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-ssh","uid":"5d0b","creationTimestamp":"2024-05-01T10:00:00Z"},"spec":{"order":10,"ingress":[{"action":"Allow","protocol":"TCP","source":{},"destination":{"ports":[22]}}],"selector":"role == 'gw'","types":["Ingress"]}}`
	docHEP = `{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"gw1-eth0","labels":{"role":"gw"}},"spec":{"node":"gw1","interfaceName":"eth0","expectedIPs":["198.18.0.1"]}}`
	docBad = `{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"bad"},"spec":{"ingress":[{"action":"Allw","source":{},"destination":{}}]}}`
)

func TestLoadWithDocuments(t *testing.T) {
	p := writeMain(t, "[gateway]\nnodeName = \"gw1\"\n")
	const k = "/calico/resources/v3/projectcalico.org/"
	docs := []Document{{k + "globalnetworkpolicies/allow-ssh", []byte(docGNP)}, {k + "hostendpoints/gw1-eth0", []byte(docHEP)}}
	l, err := LoadWith(p, docs)
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Policy.Policies) != 1 || l.Policy.Policies[0].Name != "allow-ssh" || len(l.Policy.HostEndpoints) != 1 {
		t.Fatalf("policy: %+v", l.Policy)
	}
	if len(l.Files) != 3 || l.Files[1] != docs[0].Name {
		t.Errorf("Files = %v", l.Files)
	}
	local, _ := Load(p)
	if local.Hash == l.Hash {
		t.Error("documents do not change the hash")
	}

	_, err = LoadWith(p, append(docs, Document{k + "globalnetworkpolicies/bad", []byte(docBad)}))
	want := k + `globalnetworkpolicies/bad: GlobalNetworkPolicy/bad: spec.ingress[0].action: invalid action "Allw"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v\nwant it to contain %s", err, want)
	}
}

func TestLoadWithPrecedence(t *testing.T) {
	p := writeMain(t, `[gateway]
nodeName = "gw1"
failsafeInboundHostPorts = "tcp:22"
[[globalNetworkPolicy]]
name = "allow-ssh"
selector = "all()"
`)
	felix := `{"kind":"FelixConfiguration","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"failsafeInboundHostPorts":[{"protocol":"TCP","port":2222}],"iptablesFilterDenyAction":"Reject","logSeverityScreen":"Info"}}`
	l, err := LoadWith(p, []Document{{"/calico/resources/v3/projectcalico.org/globalnetworkpolicies/allow-ssh", []byte(docGNP)}})
	if err == nil || !strings.Contains(err.Error(), `duplicate GlobalNetworkPolicy name "allow-ssh"`) {
		t.Fatalf("same name local and in the datastore: error %v, want duplicate", err)
	}
	p = writeMain(t, "[gateway]\nnodeName = \"gw1\"\nfailsafeInboundHostPorts = \"tcp:22\"\n")
	l, err = LoadWith(p, []Document{{"/calico/resources/v3/projectcalico.org/felixconfigurations/default", []byte(felix)}})
	if err != nil {
		t.Fatal(err)
	}
	st := l.Policy.Settings
	if len(st.FailsafeInbound) != 1 || st.FailsafeInbound[0].Port != 22 {
		t.Errorf("failsafe inbound = %+v, want the local tcp:22", st.FailsafeInbound)
	}
	if st.DenyAction != policy.DenyReject {
		t.Errorf("deny action = %v, want REJECT from the datastore (not set locally)", st.DenyAction)
	}
	var warned bool
	for _, w := range l.Warnings {
		if strings.Contains(w.Msg, "the local value wins") {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning that the local value wins: %v", l.Warnings)
	}
}
