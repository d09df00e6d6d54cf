package main

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nfgate/nfgate/policy/datastore"
	"github.com/nfgate/nfgate/policy/datastore/etcdtest"
)

func TestStatusTable(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	cli := srv.Client(t)
	etcdtest.InitCalico(t, cli)
	rev := etcdtest.Put(t, cli, "/calico/resources/v3/projectcalico.org/tiers/security", `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"security"},"spec":{"order":1}}`)
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	defer func(f func() time.Time) { statusNow = f }(statusNow)
	statusNow = func() time.Time { return now }
	put := func(s datastore.Status) {
		b, _ := json.Marshal(s)
		etcdtest.Put(t, cli, datastore.StatusKey("/calico", s.Node), string(b))
	}
	put(datastore.Status{Node: "gw-a", Generation: 4, Hash: "0123456789abcdef0123", Revision: rev, Applied: now.Add(-12 * time.Second)})
	put(datastore.Status{Node: "gw-b", Generation: 2, Hash: "fedcba9876543210", Revision: rev - 1, Applied: now.Add(-time.Minute), FromCache: true,
		LastError: "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/bad: GlobalNetworkPolicy/bad: spec.ingress[0].action: invalid action \"Allw\"\nmore", ErrorTime: now.Add(-5 * time.Second)})
	etcdtest.Put(t, cli, datastore.StatusKey("/calico", "junk"), "not json")

	var out, errb bytes.Buffer
	if code := runStatus([]string{"--datastore-endpoints", srv.Endpoint}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	want := `datastore revision ` + itoa(rev) + `: 2 gateway(s), 1 in sync

NODE  GEN  HASH          REVISION  IN SYNC  APPLIED  SOURCE  LAST ERROR
gw-a  4    0123456789ab  ` + itoa(rev) + `         yes      12s ago  etcd    -
gw-b  2    fedcba987654  ` + itoa(rev-1) + `         no       1m0s ago  cache   5s ago: /calico/resources/v3/projectcalico.org/globalnetworkpolicies/bad: GlobalNetworkPolicy/bad: spec.ingress[0].action: invalid action "Allw"
unreadable status key: /calico/nfgate/status/junk
`
	if got := out.String(); !sameFields(got, want) {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}

	// Locked (calicoctl datastore migrate lock): said before the table.
	etcdtest.Put(t, cli, "/calico/resources/v3/projectcalico.org/clusterinformations/default",
		`{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default"},"spec":{"datastoreReady":false}}`)
	out.Reset()
	if code := runStatus([]string{"--datastore-endpoints", srv.Endpoint}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if l := strings.SplitN(out.String(), "\n", 3); len(l) < 2 || !strings.HasPrefix(l[1], "NOT READY, no gateway applies changes: /calico/resources/v3/projectcalico.org/clusterinformations/default: ClusterInformation/default: spec.datastoreReady: the datastore is not ready") {
		t.Errorf("locked datastore:\n%s", out.String())
	}

	out.Reset()
	if code := runStatus([]string{"--datastore-endpoints", srv.Endpoint, "--json"}, &out, &errb); code != 0 {
		t.Fatalf("--json exit %d", code)
	}
	var fs datastore.FleetStatus
	if err := json.Unmarshal(out.Bytes(), &fs); err != nil || len(fs.Gateways) != 2 || fs.Revision <= rev || fs.Gateways[1].LastError == "" || fs.NotReady == "" {
		t.Errorf("--json: %v %s", err, out.String())
	}
}

func TestStatusUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runStatus(nil, &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage: nfgate status") {
		t.Errorf("no arguments: exit %d, %s", code, errb.String())
	}
	errb.Reset()
	if code := runStatus([]string{"--datastore-endpoints", "http://127.0.0.1:1", "--timeout", "300ms"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "reading http://127.0.0.1:1") {
		t.Errorf("unreachable etcd: exit %d, %s", code, errb.String())
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// sameFields compares line by line, ignoring runs of spaces (column widths
// depend on the revision's digits).
func sameFields(a, b string) bool {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(la) != len(lb) {
		return false
	}
	for i := range la {
		if strings.Join(strings.Fields(la[i]), " ") != strings.Join(strings.Fields(lb[i]), " ") {
			return false
		}
	}
	return true
}
