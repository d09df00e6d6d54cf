package config

import (
	"testing"

	"github.com/nfgate/nfgate/policy"
)

// A manifest exported with `calicoctl get tiers -o yaml` (v3.32.1) loads:
// the status subresource and server-set metadata are accepted and ignored.
func TestCalicoctlExportLoads(t *testing.T) {
	const export = `apiVersion: projectcalico.org/v3
items:
- apiVersion: projectcalico.org/v3
  kind: Tier
  metadata:
    creationTimestamp: "2026-12-01T22:54:05Z"
    name: security
    resourceVersion: "17"
    uid: 3087b510-01b1-48f5-a458-dcb7f9fc8ae6
  spec:
    defaultAction: Pass
    order: 100
  status: {}
kind: TierList
metadata:
  resourceVersion: "31"
`
	src := memSource{"nfgate.toml": []byte("include = [\"tiers.yaml\"]\n[gateway]\nnodeName = \"gw1\"\n"), "tiers.yaml": []byte(export)}
	l, err := load(src, "nfgate.toml")
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Policy.Tiers) == 0 || l.Policy.Tiers[0].Name != "security" || *l.Policy.Tiers[0].Order != 100 || l.Policy.Tiers[0].DefaultAction != policy.TierPass {
		t.Errorf("tiers: %+v", l.Policy.Tiers)
	}
}
