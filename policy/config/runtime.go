package config

import (
	"net/netip"
	"strings"
	"time"
)

// MarkBitsNeeded is how many bits of MarkMask the dataplane needs (the
// engine's mark layout; engine.MarkBitsNeeded must equal it).
const MarkBitsNeeded = 7

// FailureMode is what happens to new flows when the engine cannot decide.
type FailureMode uint8

const (
	// FailClosed: queued packets are dropped when no reader answers (default).
	FailClosed FailureMode = iota
	// FailOpen: the kernel accepts packets when the queue has no reader or is full.
	FailOpen
)

func (m FailureMode) String() string {
	if m == FailOpen {
		return "open"
	}
	return "closed"
}

// Runtime holds the daemon's own settings (TOML table [engine]). They never
// change policy semantics.
type Runtime struct {
	QueueBase   uint16        // first NFQUEUE number; default 100
	Queues      int           // queues per stage (--queue-balance); 0 = number of CPUs
	FailureMode FailureMode   // "closed" (default) or "open"
	MarkMask    uint32        // bits of the packet/conn mark nfgate may use; default 0x00ff0000
	Deadline    time.Duration // per-packet decision deadline; default 200ms
	// TraceFile is the verdict-trace (audit) JSON-lines file; "" disables, "-" is stderr.
	TraceFile   string
	TraceBuffer int // records buffered before dropping (counted); default 65536
	// DenyCacheSize/DenyCacheTTL bound the cache of recently denied flows that
	// keeps a flood of denied packets off the classifier.
	DenyCacheSize int           // default 65536
	DenyCacheTTL  time.Duration // default 2s
	// DenyRegionSize bounds each kernel deny-region set (elements; 0: no
	// kernel deny regions); DenyRegionTTL is how long an element lives.
	DenyRegionSize int           // default 4096
	DenyRegionTTL  time.Duration // default 10s
	// IptablesBackend: "auto" (default), "nft" or "legacy".
	IptablesBackend string
	// MetricsAddress: "" (default) disables metrics; loopback only unless
	// MetricsAllowRemote.
	MetricsAddress     string
	MetricsAllowRemote bool
}

// IsLoopbackHost reports whether host (from host:port) can only be reached
// from this machine: "localhost" or a loopback IP literal. "" and the
// unspecified addresses listen on every interface, so they are not.
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}

// DefaultRuntime returns the defaults documented in README.
func DefaultRuntime() Runtime {
	return Runtime{
		QueueBase:       100,
		MarkMask:        0x00ff0000,
		Deadline:        200 * time.Millisecond,
		TraceBuffer:     65536,
		DenyCacheSize:   65536,
		DenyCacheTTL:    2 * time.Second,
		DenyRegionSize:  4096,
		DenyRegionTTL:   10 * time.Second,
		IptablesBackend: "auto",
	}
}
