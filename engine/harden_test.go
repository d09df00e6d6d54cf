package engine_test

import (
	"testing"
	"time"

	"github.com/nfgate/nfgate/classify"
	"github.com/nfgate/nfgate/engine"
	"github.com/nfgate/nfgate/engine/enginetest"
	"github.com/nfgate/nfgate/policy"
	"github.com/nfgate/nfgate/policy/config"
)

// A panic while deciding costs one packet, not the daemon: the packet gets
// the failure-mode verdict exactly once, the panic is counted, and the
// queue keeps serving.
func TestPanicGivesFailureVerdict(t *testing.T) {
	for _, c := range []struct {
		mode config.FailureMode
		want engine.Action
	}{{config.FailClosed, engine.NfDrop}, {config.FailOpen, engine.NfRepeat}} {
		l := newLab(t, c.mode)
		l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
			if pkt.DstPort == 666 {
				var m map[string]int
				m["boom"]++ // nil map write: a bug in evaluation
			}
			return enginetest.Decide(policy.Accept, 0, 0)
		}
		q, h := l.queue(policy.StageForward)
		h(fwdPacket(1, 1000, 666, 0))
		h(fwdPacket(2, 1001, 22, 0))
		v := q.Verdicts()
		if len(v) != 2 || v[0].ID != 1 || v[0].Action != c.want || v[1].ID != 2 || v[1].Action != engine.NfRepeat {
			t.Errorf("%v: verdicts %+v, want packet 1 %v and packet 2 decided", c.mode, v, c.want)
		}
		if c.mode == config.FailOpen && len(v) > 0 && v[0].Mark != l.m.Pass {
			t.Errorf("open: panic verdict mark %#x, want the pass bit", v[0].Mark)
		}
		if s := l.e.Snapshot(); s.Panics != 1 {
			t.Errorf("%v: panics counted %d, want 1", c.mode, s.Panics)
		}
	}
}

// When the watchdog answered a hung decision, the trace line records the
// verdict the kernel got (the failure-mode one), marked "deadline".
func TestDeadlineTraceShowsKernelVerdict(t *testing.T) {
	for _, c := range []struct {
		mode config.FailureMode
		want string
	}{{config.FailClosed, "DROP"}, {config.FailOpen, "NONE"}} {
		l := newLab(t, c.mode)
		release, entered := make(chan struct{}), make(chan struct{})
		l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
			close(entered)
			<-release
			return enginetest.Decide(policy.Accept, 0, 0)
		}
		_, h := l.queue(policy.StageForward)
		done := make(chan struct{})
		go func() { h(fwdPacket(9, 1, 22, 0)); close(done) }()
		<-entered
		l.clock.Add(time.Second)
		l.e.CheckDeadlines()
		close(release)
		<-done
		recs := l.tracer.Records
		if len(recs) != 1 || recs[0].Verdict != c.want || recs[0].Note != "deadline" {
			t.Errorf("%v: trace %+v, want one %s line noted deadline", c.mode, recs, c.want)
		}
	}
}
