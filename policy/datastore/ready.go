package datastore

import (
	"encoding/json"
	"fmt"

	"github.com/nfgate/nfgate/policy/config"
)

// Calico's ready flag. calicoctl's first write to a datastore creates
// ClusterInformation "default" with spec.datastoreReady true;
// `calicoctl datastore migrate lock` sets it false and `unlock` true again.
// Felix (v3.32.1) applies nothing while it is not true: at start it waits
// for it (daemon.go loadConfigFromDatastore, ErrNotReady, also when the
// resource is missing), and when it turns false or is deleted while Felix
// runs, Felix restarts and waits again (calc/config_batcher.go ReadyFlagKey,
// daemon.go "Datastore became unready, need to restart"), leaving the rules
// it had programmed in place. nfgate does the same: while the flag is not
// true no snapshot is applied and the policy in force stays.

const clusterInfoName = "default"

// notReady reports why the resource set must not be applied under Calico's
// ready flag, or nil when the flag is true.
func notReady(prefix string, res map[string]Resource) *config.Diag {
	key := ResourcePrefix(prefix) + "clusterinformations/" + clusterInfoName
	d := &config.Diag{File: key, Resource: "ClusterInformation/" + clusterInfoName}
	r, ok := res[key]
	if !ok {
		d.Msg = "missing: the datastore is not initialised (calicoctl creates it, with datastoreReady: true, on its first write); " +
			"as Felix, nfgate applies nothing until it exists"
		return d
	}
	if r.Err != nil {
		return r.Err
	}
	var ci struct {
		Spec struct {
			DatastoreReady *bool `json:"datastoreReady"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(r.Value, &ci); err != nil {
		d.Field, d.Msg = "spec.datastoreReady", fmt.Sprintf("cannot read: %v", err)
		return d
	}
	if ci.Spec.DatastoreReady == nil || !*ci.Spec.DatastoreReady {
		d.Field = "spec.datastoreReady"
		d.Msg = "the datastore is not ready (locked, e.g. by `calicoctl datastore migrate lock`); " +
			"as Felix, nfgate applies no change until it is true again"
		return d
	}
	return nil
}

// unreadKinds are folders Felix reads that change host-endpoint verdicts
// but nfgate does not load. A list counts their keys so that their presence
// is logged rather than silently ignored.
var unreadKinds = []struct{ Kind, Plural, Why string }{
	{"NetworkPolicy", "networkpolicies",
		"a namespaced NetworkPolicy selects only endpoints labelled projectcalico.org/namespace with its namespace; Felix applies it " +
			"(normal chains) to a host endpoint carrying that label, nfgate does not (networkpolicyprocessor.go)"},
	{"WorkloadEndpoint", "workloadendpoints",
		"Felix matches workload endpoints' addresses with the rule selectors of GlobalNetworkPolicies; nfgate does not " +
			"(it never reads workload endpoints, to keep a cluster's workload churn off the gateways)"},
}
