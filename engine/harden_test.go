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

// A packet being decided when a reload goes live is decided again with
// the new policy: the reload's re-check cannot see its flow (a queued first
// packet's conntrack entry is not confirmed yet), so an answer from the old
// policy would stick to the flow. The reload waits for that answer.
func TestDecisionRacingAReloadUsesTheNewPolicy(t *testing.T) {
	l := newLab(t, config.FailClosed)
	release, entered := make(chan struct{}), make(chan struct{})
	l.pol.ForwardFn = func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		close(entered)
		<-release
		return enginetest.Decide(policy.Accept, 0, 0)
	}
	q, h := l.queue(policy.StageForward)
	done := make(chan struct{})
	go func() { h(fwdPacket(7, 1, 80, 0)); close(done) }()
	<-entered
	tighter := &enginetest.Policy{BindFn: bindByName, ForwardFn: func(in, out policy.EndpointID, acc bool, pkt *classify.Packet) policy.Decision {
		return enginetest.Decide(policy.Drop, 1, 0)
	}}
	swapped := make(chan struct{})
	go func() {
		if _, err := l.e.Swap(&engine.Loaded{Policy: tighter, Hash: "v2"}); err != nil {
			t.Error(err)
		}
		close(swapped)
	}()
	for gen, _ := l.e.Gen(); gen < 2; gen, _ = l.e.Gen() { // the new policy is live
		time.Sleep(time.Millisecond)
	}
	select {
	case <-swapped:
		t.Fatal("the reload finished (and re-checked) while a decision with the old policy was in flight")
	case <-time.After(20 * time.Millisecond):
	}
	close(release)
	<-done
	<-swapped
	v := q.Verdicts()
	if len(v) != 1 || v[0].Action != engine.NfDrop {
		t.Errorf("verdicts %+v, want one drop (the new policy's answer)", v)
	}
	if r := l.tracer.Records; len(r) != 1 || r[0].Gen != 2 {
		t.Errorf("trace %+v, want one line of generation 2", r)
	}
}
