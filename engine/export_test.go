package engine

// HandlerForTest registers a worker for q (as Run would) and returns its
// per-packet handler.
func (e *Engine) HandlerForTest(q Queue) func(*Packet) {
	st, _ := StageOfQueue(e.rt.QueueBase, e.rt.Queues, q.Num())
	return e.newWorker(q, st).handle
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
