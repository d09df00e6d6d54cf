// Package trace writes nfgate's verdict trace (audit log): one JSON line per
// decision, plus lines for policy reloads and for records that were lost.
//
// The packet path calls Enqueue, which copies a fixed-size Record into a
// bounded queue and never blocks: when the queue is full the record is
// dropped and counted, and the writer reports the loss with a line
//
//	{"time":"...","type":"dropped","count":N}
//
// as soon as it gets to run. A single writer goroutine formats records with
// strconv-style appends into a reused buffer (no encoding/json, no
// per-record allocation), writes through a bufio.Writer and flushes whenever
// the queue goes idle.
//
// Line formats (fields in this order; optional ones are left out when empty):
//
//	{"time":RFC3339Nano,"type":"verdict","gen":N,"hash":S,"stage":S,"in":S,"out":S,
//	 "endpoint":S,"proto":S,"src":S,"dst":S,"sport":N,"dport":N,"icmp_type":N,
//	 "icmp_code":N,"ct":S,"verdict":S,"tier":S,"policy":S,"rule":N,"reason":S,
//	 "queue":N,"logged":true,"note":S}
//	{"time":RFC3339Nano,"type":"reload","gen":N,"hash":S,"ok":B,"errors":[S...],
//	 "rechecked":N,"cut":N,"files":[S...]}
//	{"time":RFC3339Nano,"type":"region","installed":RFC3339Nano,"end":S,"gen":N,
//	 "hash":S,"stage":S,"in":S,"out":S,"set":S,"region":S,"verdict":S,"endpoint":S,
//	 "tier":S,"policy":S,"rule":N,"reason":S,"packets":N,"bytes":N}
//
// A region line is written once per kernel deny region, when it ends
// (time; end says why: expired, flushed, rebound, repaired, gone,
// stopped), with the packets and bytes the kernel dropped in it.
//
// proto is the protocol's name (tcp, udp, icmp, icmpv6, sctp, udplite) or
// its decimal number as a string, left out when neither Family nor Proto is
// set (nothing was decoded). sport/dport appear only when the record
// HasPorts, icmp_type/icmp_code only when it HasICMP, rule only when >= 0,
// logged only when true. Times are written in UTC.
package trace

import (
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Record is one decision, copied by value into the queue. Its strings are
// expected to be constants or long-lived values (interface names, the
// generation's hash), so filling one allocates nothing.
type Record struct {
	Time     time.Time // zero: stamped by the writer when it formats the line
	Gen      uint64    // policy generation
	Hash     string    // short config hash of that generation
	Stage    string    // policy stage name
	In, Out  string    // interface names
	Endpoint string    // host endpoint name
	Family   uint8     // 4 or 6
	Proto    uint8     // IP protocol number
	Src, Dst netip.Addr
	SrcPort  uint16
	DstPort  uint16
	ICMPType uint8
	ICMPCode uint8
	HasPorts bool // SrcPort/DstPort are meaningful
	HasICMP  bool // ICMPType/ICMPCode are meaningful
	CT       string
	Verdict  string // "ACCEPT", "DROP", "REJECT" or "NONE"
	Tier     string
	Policy   string
	Rule     int32 // rule index in the policy, -1 for none
	Reason   string
	Queue    uint16 // NFQUEUE number the packet came from
	Logged   bool   // a Log rule matched
	Note     string // e.g. "deny-cache", "deadline", "malformed:<reason>"
}

// ReloadEvent describes one configuration reload attempt.
type ReloadEvent struct {
	Time      time.Time // zero means now
	Gen       uint64    // generation now live
	Hash      string    // its short config hash
	OK        bool      // the new configuration went live
	Errors    []string  // why it did not, one entry per problem
	Rechecked int       // existing flows re-evaluated against the new policy
	Cut       int       // existing flows cut because the new policy denies them
	Files     []string  // configuration files read
	Warnings  []string  // the reload went live, degraded (re-check incomplete)
}

// RegionEvent is one kernel deny region, written when it ends.
type RegionEvent struct {
	Installed, Ended time.Time
	End              string
	Gen              uint64
	Hash             string
	Stage            string
	In, Out          string
	Set              string
	Box              string
	Verdict          string
	Endpoint         string
	Tier             string
	Policy           string
	Rule             int32
	Reason           string
	Packets, Bytes   uint64
}

// Stats counts what happened to records since Open. Written + Dropped is
// every record offered to Enqueue.
type Stats struct {
	Written uint64 // verdict lines the output accepted
	Dropped uint64 // records not written: refused by Enqueue (queue full, writer closed) or lost to a failed write
	Errors  uint64 // failed writes and reopens
}

// DefaultBuffer is the queue length Open uses for a buffer <= 0.
const DefaultBuffer = 4096

type ctlKind uint8

const (
	ctlFlush ctlKind = iota
	ctlReload
	ctlReopen
	ctlClose
)

type ctlMsg struct {
	kind  ctlKind
	ev    ReloadEvent
	reply chan error
}

// Writer is the trace writer. Enqueue is safe for concurrent use by any
// number of goroutines; the other methods are safe too and may block while
// the writer catches up. A Writer opened with path "" (and a nil *Writer)
// is disabled: it accepts and discards everything and counts nothing.
type Writer struct {
	recs chan Record
	regs chan RegionEvent
	ctl  chan ctlMsg
	wake chan struct{} // nudges the writer to report drops
	done chan struct{}

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	written atomic.Uint64
	dropped atomic.Uint64
	pending atomic.Uint64 // drops not yet reported in a "dropped" line
	errs    atomic.Uint64

	log atomic.Pointer[slog.Logger]

	// Owned by the writer goroutine.
	path string    // file path, or "" when out is not a file we opened
	file *os.File  // nil for stderr and New
	out  io.Writer // file, stderr, or New's writer
	// trunc is out when it can be truncated back after a failed write (a
	// regular file); nil otherwise.
	trunc fileLike
	buf   []byte // the line being formatted
	// pend holds whole lines not yet written; pendVerdicts of them are
	// verdict lines, and pendReported drops are reported in its
	// "dropped" lines.
	pend         []byte
	pendVerdicts uint64
	pendReported uint64
	failing      bool   // the last write failed
	lostSince    uint64 // records lost since failing began
	now          func() time.Time
}

const errNotRegular = "not a regular file (a FIFO or device could block the daemon or never fill up)"

// fileLike is an output a failed write can be undone on (*os.File).
type fileLike interface {
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
}

// pendSize is how many bytes of lines are collected before a write.
const pendSize = 64 << 10

// SetLogger makes the writer log the first failed write (and the recovery)
// at once; without it failures are only counted.
func (w *Writer) SetLogger(l *slog.Logger) {
	if w.Enabled() {
		w.log.Store(l)
	}
}

// Open starts a writer appending to the file at path (created 0640 if
// missing). path "-" writes to standard error; path "" returns a Writer that
// discards every record and counts nothing. buffer is the queue length.
func Open(path string, buffer int) (*Writer, error) {
	switch path {
	case "":
		return &Writer{}, nil
	case "-":
		return start(os.Stderr, nil, "", buffer), nil
	}
	f, err := openFile(path)
	if err != nil {
		return nil, err
	}
	return start(f, f, path, buffer), nil
}

// New starts a writer on w; Reopen on it is a no-op and Close does not close
// w. It suits tests and outputs other than files.
func New(w io.Writer, buffer int) *Writer {
	return start(w, nil, "", buffer)
}

// openFile opens path for appending. It never blocks: a FIFO without a
// reader would hold the daemon in open(2) (after its hooks are live), so
// the file is opened non-blocking and must be a regular file.
func openFile(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, errors.New("trace: " + path + ": " + errNotRegular)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NONBLOCK|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, errors.New("trace: " + err.Error())
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = errors.New(errNotRegular)
	}
	if err != nil {
		f.Close()
		return nil, errors.New("trace: " + path + ": " + err.Error())
	}
	return f, nil
}

func start(out io.Writer, f *os.File, path string, buffer int) *Writer {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	w := &Writer{
		recs: make(chan Record, buffer),
		regs: make(chan RegionEvent, 256),
		ctl:  make(chan ctlMsg),
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
		path: path,
		file: f,
		out:  out,
		buf:  make([]byte, 0, 1024),
		pend: make([]byte, 0, pendSize),
		now:  time.Now,
	}
	// Only a file the writer opened is truncated after a failed write
	// (standard error may be a file others write to as well).
	if f != nil {
		w.trunc = f
	} else if fl, ok := out.(fileLike); ok {
		if _, isFile := out.(*os.File); !isFile {
			w.trunc = fl
		}
	}
	go w.run()
	return w
}

// Enabled reports whether records are written anywhere; callers may skip
// filling a Record when it is false.
func (w *Writer) Enabled() bool { return w != nil && w.recs != nil }

// Enqueue copies r into the queue and returns true, or returns false and
// counts a drop when the queue is full or the writer is closed. It never
// blocks and allocates nothing. A disabled Writer accepts and discards.
func (w *Writer) Enqueue(r *Record) bool {
	if !w.Enabled() {
		return true
	}
	if !w.closed.Load() {
		select {
		case w.recs <- *r:
			return true
		default:
		}
	}
	w.dropped.Add(1)
	w.pending.Add(1)
	select {
	case w.wake <- struct{}{}:
	default:
	}
	return false
}

// Reload writes a reload line after every record already queued. It blocks
// until the line is written and flushed; it is meant for the reload path,
// not the packet path.
func (w *Writer) Reload(ev ReloadEvent) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	w.call(ctlMsg{kind: ctlReload, ev: ev})
}

// Region queues a region line without blocking (a full queue drops it,
// counted and reported like a dropped record).
func (w *Writer) Region(ev RegionEvent) {
	if !w.Enabled() {
		return
	}
	if !w.closed.Load() {
		select {
		case w.regs <- ev:
			return
		default:
		}
	}
	w.dropped.Add(1)
	w.pending.Add(1)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// Flush waits until every record queued before the call is written to the
// output, and returns the first write error since the last Flush, if any.
func (w *Writer) Flush() error { return w.call(ctlMsg{kind: ctlFlush}) }

// Reopen writes out the queued records, then closes the file and opens the
// path again, so a log rotated by renaming continues in a new file (call it
// on SIGUSR1 or from logrotate's postrotate). If the path cannot be opened
// the old file stays in use and the error is returned. For "-" and New
// writers it only flushes.
func (w *Writer) Reopen() error { return w.call(ctlMsg{kind: ctlReopen}) }

// Close writes out every queued record, flushes, closes the file (never
// standard error or a New writer's io.Writer) and stops the writer. Later
// Enqueue calls return false. Close is idempotent.
func (w *Writer) Close() error {
	if !w.Enabled() {
		return nil
	}
	w.closeOnce.Do(func() {
		w.closed.Store(true)
		w.closeErr = w.call(ctlMsg{kind: ctlClose})
		// An Enqueue racing with Close may have slipped a record in after
		// the writer's last drain: count it as dropped rather than lose it
		// silently.
		for drained := false; !drained; {
			select {
			case <-w.recs:
				w.dropped.Add(1)
			default:
				drained = true
			}
		}
	})
	return w.closeErr
}

// Stats returns the counters. A disabled Writer counts nothing.
func (w *Writer) Stats() Stats {
	if !w.Enabled() {
		return Stats{}
	}
	return Stats{Written: w.written.Load(), Dropped: w.dropped.Load(), Errors: w.errs.Load()}
}

var errClosed = errors.New("trace: writer closed")

func (w *Writer) call(m ctlMsg) error {
	if !w.Enabled() {
		return nil
	}
	m.reply = make(chan error, 1)
	select {
	case w.ctl <- m:
		return <-m.reply
	case <-w.done:
		return errClosed
	}
}

// run is the writer goroutine.
func (w *Writer) run() {
	defer close(w.done)
	var werr error // first write error since the last Flush/Reopen/Close
	keep := func(err error) {
		if werr == nil {
			werr = err
		}
	}
	for {
		select {
		case r := <-w.recs:
			keep(w.writeRecord(&r))
			if len(w.recs) == 0 {
				w.reportDrops()
				keep(w.flush())
			}
		case ev := <-w.regs:
			w.buf = appendRegion(w.buf[:0], &ev)
			w.add(w.buf, false, 0)
			if len(w.recs) == 0 && len(w.regs) == 0 {
				keep(w.flush())
			}
		case <-w.wake:
			w.reportDrops()
			keep(w.flush())
		case m := <-w.ctl:
			// Everything enqueued before the call goes out first.
			for n := len(w.recs); n > 0; n-- {
				r := <-w.recs
				keep(w.writeRecord(&r))
			}
			for n := len(w.regs); n > 0; n-- {
				ev := <-w.regs
				w.buf = appendRegion(w.buf[:0], &ev)
				w.add(w.buf, false, 0)
			}
			w.reportDrops()
			var err error
			switch m.kind {
			case ctlReload:
				keep(w.flush())
				w.buf = appendReload(w.buf[:0], &m.ev)
				w.add(w.buf, false, 0)
				keep(w.flush())
			case ctlReopen:
				keep(w.flush())
				err = w.reopen()
				if err == nil {
					err = werr
				}
				werr = nil
			case ctlFlush, ctlClose:
				keep(w.flush())
				err, werr = werr, nil
			}
			if m.kind == ctlClose {
				if w.file != nil {
					if cerr := w.file.Close(); cerr != nil && err == nil {
						err = cerr
					}
				}
				m.reply <- err
				return
			}
			m.reply <- err
		}
	}
}

func (w *Writer) writeRecord(r *Record) error {
	if r.Time.IsZero() {
		r.Time = w.now()
	}
	w.buf = appendRecord(w.buf[:0], r)
	var err error
	if len(w.pend)+len(w.buf) > pendSize {
		err = w.flush()
	}
	w.add(w.buf, true, 0)
	// Report drops between records, not only when idle: under sustained
	// overload the queue may never drain.
	if w.pending.Load() != 0 {
		w.reportDrops()
	}
	return err
}

// add appends a whole line to the pending output.
func (w *Writer) add(line []byte, verdict bool, reported uint64) {
	w.pend = append(w.pend, line...)
	if verdict {
		w.pendVerdicts++
	}
	w.pendReported += reported
}

func (w *Writer) reportDrops() {
	if n := w.pending.Swap(0); n != 0 {
		w.buf = appendDropped(w.buf[:0], w.now(), n)
		w.add(w.buf, false, n)
	}
}

// flush writes the pending lines. On success their verdicts count as
// written. On failure none of them does: the verdicts count as dropped, and
// they and the drops their "dropped" lines reported go back to pending, to
// be reported once the output works again. A file is truncated back to
// where the write began, so a line never stays half-written.
func (w *Writer) flush() error {
	if len(w.pend) == 0 {
		return nil
	}
	var size int64 = -1
	if w.trunc != nil {
		if fi, err := w.trunc.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fi.Size()
		}
	}
	n, err := w.out.Write(w.pend)
	if err == nil && n < len(w.pend) {
		err = io.ErrShortWrite
	}
	if err == nil {
		w.written.Add(w.pendVerdicts)
		if w.failing {
			w.failing = false
			if l := w.log.Load(); l != nil {
				l.Info("trace writes work again", "path", w.path, "lost_records", w.lostSince)
			}
		}
		w.pend, w.pendVerdicts, w.pendReported = w.pend[:0], 0, 0
		return nil
	}
	w.errs.Add(1)
	if n > 0 {
		if size >= 0 {
			if terr := w.trunc.Truncate(size); terr != nil {
				w.errs.Add(1)
				w.out.Write([]byte{'\n'})
			}
		} else {
			w.out.Write([]byte{'\n'}) // end the torn line
		}
	}
	lost := w.pendVerdicts
	w.dropped.Add(lost)
	w.pending.Add(lost + w.pendReported)
	if !w.failing {
		w.failing, w.lostSince = true, 0
		if l := w.log.Load(); l != nil {
			l.Error("trace write failed; records are being lost (counted, and reported in the trace once writes work again)",
				"path", w.path, "err", err, "lost_records", lost)
		}
	}
	w.lostSince += lost
	w.pend, w.pendVerdicts, w.pendReported = w.pend[:0], 0, 0
	return err
}

func (w *Writer) reopen() error {
	if w.file == nil || w.path == "" {
		return nil
	}
	f, err := openFile(w.path)
	if err != nil {
		w.errs.Add(1)
		return err
	}
	old := w.file
	w.file, w.out, w.trunc = f, f, f
	return old.Close()
}
