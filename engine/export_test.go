package engine

import "github.com/nfgate/nfgate/policy"

// HandlerForTest registers a worker for q (as Run would) and returns its
// per-packet handler.
func (e *Engine) HandlerForTest(q Queue) func(*Packet) {
	st, _ := StageOfQueue(e.rt.QueueBase, e.rt.Queues, q.Num())
	return e.newWorker(q, st).handle
}

// BurstHandlerForTest registers a worker for q (as Run would) and returns
// its per-burst handler.
func (e *Engine) BurstHandlerForTest(q Queue) func(*Burst) {
	st, _ := StageOfQueue(e.rt.QueueBase, e.rt.Queues, q.Num())
	return e.newWorker(q, st).burst
}

// CutsForTest returns the pending cut requests.
func (e *Engine) CutsForTest() []FlowTuple {
	var out []FlowTuple
	for {
		select {
		case t := <-e.cuts:
			out = append(out, t)
		default:
			return out
		}
	}
}

var VerdictFor = verdictFor

// CutFlowForTest does what the cutter does with a cut flow.
func (e *Engine) CutFlowForTest(t FlowTuple) { e.cutFlow(t) }

// FailVerdictForTest is the watchdog's failure-mode verdict for a packet of stage st.
func (e *Engine) FailVerdictForTest(st policy.Stage, mark uint32) (Action, uint32) {
	return e.failVerdict(mark)
}
