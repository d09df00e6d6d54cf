package engine

import (
	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/conntrack"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/links"
	"github.com/nfgate/nfgate/engine/trace"
	"github.com/nfgate/nfgate/policy"
)

// DefaultDecoder returns a classify.Decoder.
func DefaultDecoder() Decoder { return new(classify.Decoder) }

// flowKey is the deny-cache key of a packet (ICMP echo ids are not decoded:
// all echoes between two hosts share a key).
func flowKey(p *classify.Packet) conntrack.FlowKey {
	if p.HasICMP() {
		return conntrack.MakeICMPKey(uint8(p.Family), p.Proto, p.Src, p.Dst, p.ICMPType, p.ICMPCode, 0)
	}
	return conntrack.MakeKey(uint8(p.Family), p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort)
}

type denyAdapter struct{ c *denycache.Cache }

// DenyCacheOf adapts a denycache.Cache. An entry only answers for the stage
// that denied the flow.
func DenyCacheOf(c *denycache.Cache) DenyCache { return denyAdapter{c} }

func (d denyAdapter) Lookup(st policy.Stage, p *classify.Packet) (DenyEntry, bool) {
	e, ok := d.c.Lookup(flowKey(p))
	if !ok || e.Stage != uint8(st) {
		return DenyEntry{}, false
	}
	return DenyEntry{Gen: e.Gen, Stage: st, Reason: policy.Reason(e.Reason), Tier: e.Tier, Policy: e.Policy, Rule: e.Rule}, true
}

func (d denyAdapter) Add(st policy.Stage, p *classify.Packet, e DenyEntry) {
	d.c.Add(flowKey(p), denycache.Entry{Gen: e.Gen, Policy: e.Policy, Tier: e.Tier, Rule: e.Rule, Reason: uint8(e.Reason), Stage: uint8(st)})
}

func (d denyAdapter) Purge() { d.c.Purge() }

type traceAdapter struct{ w *trace.Writer }

// TracerOf adapts a trace.Writer.
func TracerOf(w *trace.Writer) Tracer { return traceAdapter{w} }

func (t traceAdapter) Decision(r *TraceRecord) bool {
	p := &r.Pkt
	rec := trace.Record{Time: r.Time, Gen: r.Gen, Hash: r.Hash, Stage: r.Stage, In: r.In, Out: r.Out, Endpoint: r.Endpoint,
		Family: uint8(p.Family), Proto: p.Proto, Src: p.Src, Dst: p.Dst, SrcPort: p.SrcPort, DstPort: p.DstPort,
		ICMPType: p.ICMPType, ICMPCode: p.ICMPCode, HasPorts: p.HasPorts(), HasICMP: p.HasICMP(),
		CT: r.CT, Verdict: r.Verdict, Tier: r.Tier, Policy: r.Policy, Rule: r.Rule, Reason: r.Reason,
		Queue: r.Queue, Logged: r.Logged, Note: r.Note}
	return t.w.Enqueue(&rec)
}

func (t traceAdapter) Reload(ev ReloadInfo) {
	t.w.Reload(trace.ReloadEvent{Time: ev.Time, Gen: ev.Gen, Hash: ev.Hash, OK: ev.OK, Errors: ev.Errors,
		Rechecked: ev.Rechecked, Cut: ev.Cut, Files: ev.Files, Warnings: ev.Warnings})
}

type linksAdapter struct{ t *links.Table }

// LinksOf adapts a links.Table.
func LinksOf(t *links.Table) Links { return linksAdapter{t} }

func (l linksAdapter) Interfaces() []Iface {
	src := l.t.Interfaces()
	out := make([]Iface, len(src))
	for i, f := range src {
		out[i] = Iface{Index: f.Index, Name: f.Name, Addrs: f.Addrs}
	}
	return out
}

func (l linksAdapter) Name(i uint32) (string, bool) { return l.t.Name(i) }
func (l linksAdapter) Changed() <-chan struct{}     { return l.t.Changed() }
