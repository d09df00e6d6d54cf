package policy

import (
	"fmt"
	"strings"

	"github.com/nfgate/nfgate/policy/selector"
)

// Calico's datastore conversion (libcalico-go updateprocessors) turns a
// policy's namespaceSelector and serviceAccountSelector, and a rule's
// namespaceSelector and serviceAccounts, into one selector over labels with
// reserved prefixes, by rewriting selector text. Felix only ever sees the
// result. The functions here reproduce that text rewriting, quirks included,
// because the quirks decide which host endpoints a policy or rule selects.

// Reserved label names and prefixes Calico uses for namespaces and service
// accounts. Host endpoints may carry them (GlobalNetworkSets may not carry
// LabelNamespace).
const (
	LabelNamespace      = "projectcalico.org/namespace"
	LabelServiceAccount = "projectcalico.org/serviceaccount"
	namespacePrefix     = "pcns."
	serviceAcctPrefix   = "pcsa."
	// NamespaceProfilePrefix names the profile whose labelsToApply the
	// network sets of a namespace inherit (kns.<namespace>).
	NamespaceProfilePrefix = "kns."
)

// NetworkSetLabels returns the labels rule selectors see on a network set.
// A GlobalNetworkSet has its own labels. A namespaced NetworkSet has, as
// Felix's datastore conversion gives it (networksetprocessor.go), its own
// labels plus projectcalico.org/namespace: <namespace>, and inherits the
// labelsToApply of the profile kns.<namespace> (Calico's namespace profile;
// in an etcd datastore only a user creates one); its own labels win.
func NetworkSetLabels(cfg *Config, ns *GlobalNetworkSet) map[string]string {
	if ns.Namespace == "" {
		return ns.Labels
	}
	out := make(map[string]string, len(ns.Labels)+1)
	for i := range cfg.Profiles {
		if cfg.Profiles[i].Name == NamespaceProfilePrefix+ns.Namespace {
			for k, v := range cfg.Profiles[i].LabelsToApply {
				out[k] = v
			}
			break
		}
	}
	for k, v := range ns.Labels {
		out[k] = v
	}
	out[LabelNamespace] = ns.Namespace
	return out
}

// prefixAndAppend is Calico's prefixAndAppendSelector: the new selector with
// every label prefixed, ANDed after the current one.
func prefixAndAppend(cur, add, prefix string) (string, error) {
	p, err := selector.PrefixLabels(add, prefix)
	if err != nil {
		return "", err
	}
	if cur == "" {
		return p, nil
	}
	return "(" + cur + ") && " + p, nil
}

// PolicySelector is the selector Felix evaluates for a GlobalNetworkPolicy
// with spec.selector sel, namespaceSelector ns and serviceAccountSelector sa
// (each "" when unset), all as written. After ANDing in the namespace part,
// Calico replaces every "all()" in the whole text, the policy's own selector
// included, with has(projectcalico.org/namespace); after the service account
// part, with has(projectcalico.org/serviceaccount). So `selector: all()` with
// any namespaceSelector selects only endpoints labelled with the namespace
// label, and a namespaceSelector that absent labels satisfy (!has(team))
// selects every host endpoint its selector selects.
func PolicySelector(sel, ns, sa string) (*selector.Selector, error) {
	s := sel
	var err error
	if ns != "" {
		if s, err = prefixAndAppend(s, ns, namespacePrefix); err != nil {
			return nil, fmt.Errorf("namespaceSelector: %w", err)
		}
		s = strings.ReplaceAll(s, "all()", "has("+LabelNamespace+")")
	}
	if sa != "" {
		if s, err = prefixAndAppend(s, sa, serviceAcctPrefix); err != nil {
			return nil, fmt.Errorf("serviceAccountSelector: %w", err)
		}
		s = strings.ReplaceAll(s, "all()", "has("+LabelServiceAccount+")")
	}
	return selector.Parse(s)
}

// EndpointSelector is the positive selector Felix evaluates for an entity
// rule of a global policy or profile (getEndpointSelector): its selector,
// ANDed with the service account part and the namespace part. In the
// namespace part "all()" becomes has(projectcalico.org/namespace) and
// "global()" becomes !has(projectcalico.org/namespace). nil when the rule has
// none of the three. NotSelector stays separate.
func EndpointSelector(e *EntityRule) (*selector.Selector, error) {
	if e.NamespaceSelector == nil && e.ServiceAccounts == nil {
		return e.Selector, nil // nothing to combine
	}
	ns := ""
	if e.NamespaceSelector != nil {
		p, err := selector.PrefixLabels(e.NamespaceSelector.String(), namespacePrefix)
		if err != nil {
			return nil, fmt.Errorf("namespaceSelector: %w", err)
		}
		p = strings.ReplaceAll(p, "all()", "has("+LabelNamespace+")")
		ns = strings.ReplaceAll(p, "global()", "!has("+LabelNamespace+")")
	}
	var parts []string
	if e.ServiceAccounts != nil {
		sa, err := serviceAccountSelector(e.ServiceAccounts)
		if err != nil {
			return nil, err
		}
		if sa != "" {
			parts = append(parts, sa)
		}
	}
	if e.Selector != nil {
		parts = append(parts, e.Selector.String())
	}
	s := strings.Join(parts, ") && (")
	if len(parts) > 1 {
		s = "(" + s + ")"
	}
	if ns != "" {
		if s != "" {
			s = "(" + ns + ") && (" + s + ")"
		} else {
			s = ns
		}
	}
	if s == "" {
		return nil, nil
	}
	return selector.Parse(s)
}

// serviceAccountSelector is Calico's parseServiceAccounts: the selector with
// labels prefixed pcsa. (no all() rewriting here), ANDed with
// projectcalico.org/serviceaccount in {names}. When the names cannot be
// written as a selector (a name holding a single quote) Calico logs an error
// and drops the whole service account match.
func serviceAccountSelector(m *ServiceAccountMatch) (string, error) {
	sel := ""
	if m.Selector != nil {
		p, err := selector.PrefixLabels(m.Selector.String(), serviceAcctPrefix)
		if err != nil {
			return "", fmt.Errorf("serviceAccounts.selector: %w", err)
		}
		sel = p
	}
	if len(m.Names) == 0 {
		return sel, nil
	}
	names, err := selector.Parse(LabelServiceAccount + " in { '" + strings.Join(m.Names, "', '") + "' }")
	if err != nil {
		return "", nil
	}
	if sel == "" {
		return names.String(), nil
	}
	return "(" + sel + ") && (" + names.String() + ")", nil
}
