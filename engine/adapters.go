package engine

import (
	"sync/atomic"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/conntrack"
	"github.com/nfgate/nfgate/engine/denycache"
	"github.com/nfgate/nfgate/engine/links"
	"github.com/nfgate/nfgate/engine/trace"
	"github.com/nfgate/nfgate/policy"
)

// DefaultDecoder returns a classify.Decoder.
func DefaultDecoder() Decoder { return new(classify.Decoder) }

// denyKey is the deny-cache key of a packet in scope sc (ICMP echo ids are
// not decoded: all echoes between two hosts share a flow).
func denyKey(sc DenyScope, p *classify.Packet) denycache.Key {
	var f conntrack.FlowKey
	if p.HasICMP() {
		f = conntrack.MakeICMPKey(uint8(p.Family), p.Proto, p.Src, p.Dst, p.ICMPType, p.ICMPCode, 0)
	} else {
		f = conntrack.MakeKey(uint8(p.Family), p.Proto, p.Src, p.Dst, p.SrcPort, p.DstPort)
	}
	var flags uint8
	if sc.Accepted {
		flags = 1
	}
	return denycache.Key{Flow: f, Scope: denycache.Scope{Stage: uint8(sc.Stage), Dir: uint8(sc.Dir), Flags: flags,
		In: int32(sc.In), Out: int32(sc.Out)}}
}

// denyAdapter adapts a denycache.Cache. live[st] is 1 + the generation of
// the last denial cached at stage st (0: none since the last purge): a
// lookup at a stage with nothing cached in the live generation costs one
// atomic load instead of a key build, a hash and a shard lock.
type denyAdapter struct {
	c    *denycache.Cache
	live [numStages]atomic.Uint64
}

// DenyCacheOf adapts a denycache.Cache. An entry only answers for the scope
// (stage, direction, endpoints) that denied the flow.
func DenyCacheOf(c *denycache.Cache) DenyCache { return &denyAdapter{c: c} }

func (d *denyAdapter) Lookup(sc DenyScope, p *classify.Packet, gen uint64) (DenyEntry, bool) {
	if int(sc.Stage) >= numStages || d.live[sc.Stage].Load() != gen+1 {
		return DenyEntry{}, false
	}
	e, ok := d.c.Lookup(denyKey(sc, p))
	if !ok || e.Stage != uint8(sc.Stage) || e.Gen != gen {
		return DenyEntry{}, false
	}
	return DenyEntry{Gen: e.Gen, Stage: sc.Stage, Reason: policy.Reason(e.Reason), Tier: e.Tier, Policy: e.Policy, Rule: e.Rule}, true
}

func (d *denyAdapter) Add(sc DenyScope, p *classify.Packet, e DenyEntry) {
	d.c.Add(denyKey(sc, p), denycache.Entry{Gen: e.Gen, Policy: e.Policy, Tier: e.Tier, Rule: e.Rule, Reason: uint8(e.Reason), Stage: uint8(sc.Stage)})
	if int(sc.Stage) < numStages && d.live[sc.Stage].Load() != e.Gen+1 {
		d.live[sc.Stage].Store(e.Gen + 1)
	}
}

func (d *denyAdapter) Purge() {
	for i := range d.live {
		d.live[i].Store(0)
	}
	d.c.Purge()
}

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
