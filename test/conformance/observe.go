package conformance

import (
	"strings"
)

// traceEvent is one decoded nf_tables trace message.
type traceEvent struct {
	ID        uint32
	Table     string
	Chain     string
	Type      uint32
	Verdict   int32 // NF_* or NFT_* code (rule events), the policy (policy events)
	JumpTo    string
	Family    uint8
	IIF, OIF  uint32
	HasPacket bool
	Network   []byte
	Transport []byte
}

// Trace event types and netfilter verdicts (linux/netfilter/nf_tables.h).
const (
	traceTypePolicy = 1
	traceTypeReturn = 2
	traceTypeRule   = 3

	nfDrop   = 0
	nfAccept = 1
	nfQueue  = 3
)

// Verdicts as the comparison uses them.
const (
	vAccept    = "ACCEPT"
	vDrop      = "DROP"
	vNone      = "NONE"
	vUnreached = "-" // the packet never reached the hook
)

// hookNames are the base chains whose verdicts make up the stages.
var hookNames = map[string]bool{
	"raw PREROUTING": true, "mangle PREROUTING": true, "filter INPUT": true, "filter FORWARD": true,
	"raw OUTPUT": true, "filter OUTPUT": true, "mangle POSTROUTING": true,
}

// traceTable is our own nft table: it switches tracing on and reports the
// conntrack state (jumps to chains named st-<state>).
const traceTable = "nfconf"

// traversal is one pass of a packet through one base chain.
type traversal struct {
	Hook     string // "<table> <CHAIN>"
	IIF, OIF uint32
	Events   []traceEvent
}

// verdict of one traversal: the last event decides.
func (tv *traversal) verdict() string {
	if len(tv.Events) == 0 {
		return "?"
	}
	e := tv.Events[len(tv.Events)-1]
	switch e.Type {
	case traceTypePolicy:
		if e.Verdict == nfAccept {
			return vNone
		}
		return vDrop
	case traceTypeRule:
		switch {
		case e.Verdict == nfAccept:
			return vAccept
		case e.Verdict == nfDrop:
			return vDrop
		case e.Verdict >= 0 && e.Verdict&0xff == nfQueue:
			return "QUEUE"
		}
	}
	return "?"
}

// decider names the chain that decided the traversal, for reports and
// classification: the last policy or profile chain a rule matched in
// ("cali-pi-gnp/p1", "cali-pro-prof-0"), else the last endpoint or
// failsafe chain (end of tier, failsafe), else nfgate's chain.
func (tv *traversal) decider() string {
	pol, ep := "", ""
	for _, e := range tv.Events {
		switch {
		case strings.HasPrefix(e.Chain, "cali-pi-") || strings.HasPrefix(e.Chain, "cali-po-") ||
			strings.HasPrefix(e.Chain, "cali-pri-") || strings.HasPrefix(e.Chain, "cali-pro-"):
			pol = e.Chain
		case strings.HasPrefix(e.Chain, "cali-fh") || strings.HasPrefix(e.Chain, "cali-th") ||
			strings.HasPrefix(e.Chain, "cali-failsafe") || strings.HasPrefix(e.Chain, "NFGATE-"):
			ep = e.Chain
		}
	}
	if pol != "" {
		return pol
	}
	return ep
}

// Observed is what the kernel did with one probe on one gateway.
type Observed struct {
	Seen  bool              // the probe was traced at all
	CT    string            // conntrack state after the conntrack hook ("new", "invalid", "untracked", ...)
	Hooks map[string]string // hook -> ACCEPT / DROP / NONE (absent: unreached)
	IIF   map[string]uint32
	OIF   map[string]uint32
	Chain map[string]string // hook -> deciding chain
	Order []string          // hooks in the order reached
	Odd   string            // anything the analysis could not explain
}

// observe groups a namespace's trace events by probe and derives each
// probe's verdict per hook.
func observe(evs []traceEvent) map[uint16]*Observed {
	type cur struct {
		probe uint16
		ok    bool
		tv    *traversal
	}
	byTrace := map[uint32]*cur{}
	travs := map[uint16][]*traversal{}
	cts := map[uint16]string{}
	for i := range evs {
		e := &evs[i]
		c := byTrace[e.ID]
		if e.HasPacket {
			id, _, ok := probeOf(e.Network, e.Transport)
			c = &cur{probe: id, ok: ok}
			byTrace[e.ID] = c
			if ok {
				c.tv = &traversal{Hook: e.Table + " " + e.Chain, IIF: e.IIF, OIF: e.OIF}
				travs[id] = append(travs[id], c.tv)
			}
		}
		if c == nil || !c.ok {
			continue
		}
		if e.Table == traceTable {
			if strings.HasPrefix(e.JumpTo, "st-") && cts[c.probe] == "" {
				cts[c.probe] = strings.TrimPrefix(e.JumpTo, "st-")
			}
			continue
		}
		c.tv.Events = append(c.tv.Events, *e)
	}
	out := map[uint16]*Observed{}
	for id, ts := range travs {
		o := &Observed{Seen: true, CT: cts[id], Hooks: map[string]string{}, IIF: map[string]uint32{},
			OIF: map[string]uint32{}, Chain: map[string]string{}}
		out[id] = o
		// Keep the hook traversals in order; the last traversal of a hook
		// counts (NF_REPEAT runs a hook again).
		var hooks []*traversal
		for _, tv := range ts {
			if !hookNames[tv.Hook] {
				continue
			}
			hooks = append(hooks, tv)
		}
		for i, tv := range hooks {
			v := tv.verdict()
			if v == "QUEUE" {
				// Queued and never seen again at this hook: the verdict
				// came from user space. Reaching a later hook means it
				// was accepted; otherwise it was dropped.
				again, later := false, false
				for _, x := range hooks[i+1:] {
					if x.Hook == tv.Hook {
						again = true
					} else {
						later = true
					}
				}
				switch {
				case again:
					continue
				case later:
					v = vAccept
				default:
					v = vDrop
				}
			}
			if v == "?" {
				o.Odd += tv.Hook + ": no verdict; "
			}
			if _, seen := o.Hooks[tv.Hook]; !seen {
				o.Order = append(o.Order, tv.Hook)
			}
			o.Hooks[tv.Hook] = v
			o.IIF[tv.Hook], o.OIF[tv.Hook] = tv.IIF, tv.OIF
			o.Chain[tv.Hook] = tv.decider()
		}
	}
	return out
}
