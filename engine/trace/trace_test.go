package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"math/rand"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var t0 = time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)

func v4(s string) netip.Addr { return netip.MustParseAddr(s) }

// goldenRecords covers every optional field being present and absent.
var goldenRecords = []Record{
	{ // forwarded TCP denied by a rule, every field set
		Time: t0, Gen: 7, Hash: "3f2a9c1d", Stage: "forward", In: "eth0", Out: "eth1", Endpoint: "wan",
		Family: 4, Proto: 6, Src: v4("198.18.0.1"), Dst: v4("198.19.0.2"), SrcPort: 40000, DstPort: 22, HasPorts: true,
		CT: "new", Verdict: "DROP", Tier: "default", Policy: "deny-ssh", Rule: 2, Reason: "rule", Queue: 3, Logged: true,
	},
	{ // IPv6 UDP accepted by the default action: no tier, policy or rule
		Time: t0.Add(time.Millisecond), Gen: 7, Hash: "3f2a9c1d", Stage: "input", In: "eth0",
		Family: 6, Proto: 17, Src: v4("2001:db8::1"), Dst: v4("2001:db8::2"), SrcPort: 5353, DstPort: 53, HasPorts: true,
		CT: "new", Verdict: "ACCEPT", Rule: -1, Reason: "default",
	},
	{ // ICMP echo: type and code, no ports
		Time: t0.Add(2 * time.Millisecond), Gen: 8, Stage: "output", Out: "eth1",
		Family: 4, Proto: 1, Src: v4("198.18.0.1"), Dst: v4("198.18.0.9"), ICMPType: 8, ICMPCode: 0, HasICMP: true,
		Verdict: "ACCEPT", Policy: "allow-ping", Rule: 0, Reason: "rule",
	},
	{ // a protocol without a name, answered from the deny cache
		Time: t0.Add(3 * time.Millisecond), Gen: 8, Stage: "input", In: "eth0",
		Family: 4, Proto: 47, Src: v4("198.18.0.1"), Dst: v4("198.18.0.2"),
		Verdict: "DROP", Rule: -1, Reason: "cached", Note: "deny-cache",
	},
	{ // malformed packet: no addresses, odd characters in names are escaped
		Time: t0.Add(4 * time.Millisecond), Stage: "untracked", In: "we\"ird\\if\n\x01", Endpoint: "ünï\u2028",
		Verdict: "NONE", Rule: -1, Note: "malformed:truncated-ip\xff",
	},
}

var goldenReloads = []ReloadEvent{
	{Time: t0.Add(time.Second), Gen: 8, Hash: "9e8d7c6b", OK: true, Rechecked: 120, Cut: 3, Files: []string{"/etc/nfgate/nfgate.toml", "/etc/nfgate/policy.d/10-wan.toml"}},
	{Time: t0.Add(2 * time.Second), Gen: 8, Hash: "9e8d7c6b", OK: false, Errors: []string{`policy.d/20-lan.toml:4: unknown field "selectr"`}, Files: []string{"/etc/nfgate/nfgate.toml"}},
}

func TestGolden(t *testing.T) {
	var out bytes.Buffer
	w := New(&out, 16)
	for i := range goldenRecords {
		if !w.Enqueue(&goldenRecords[i]) {
			t.Fatalf("Enqueue %d refused", i)
		}
	}
	for _, ev := range goldenReloads {
		w.Reload(ev)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "trace.golden")
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(out.Bytes(), want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\ngot:\n%s\nwant:\n%s", golden, out.Bytes(), want)
	}
	// Every line is valid JSON that encoding/json reads back the same way.
	for i, line := range bytes.Split(bytes.TrimSpace(out.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Errorf("line %d is not JSON: %v\n%s", i+1, err, line)
		}
	}
	if st := w.Stats(); st != (Stats{Written: uint64(len(goldenRecords))}) {
		t.Errorf("Stats = %+v", st)
	}
}

// TestStringEscaping checks the hand-written JSON string encoder against
// encoding/json on awkward inputs.
func TestStringEscaping(t *testing.T) {
	for _, s := range []string{"", "eth0", `a"b\c`, "tab\there", "nl\ncr\r", "\x00\x1f\x7f", "ünïcödé", "bad\xffutf8\xc3", "\u2028\u2029", "<>&"} {
		got := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Errorf("%q encoded as %s: not JSON: %v", s, got, err)
			continue
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Errorf("%q: decodes to %q, encoding/json gives %q", s, back, wantBack)
		}
	}
}

// blockingWriter blocks every Write until released.
type blockingWriter struct {
	entered chan struct{}
	release chan struct{}
	mu      sync.Mutex
	buf     bytes.Buffer
}

func (b *blockingWriter) Write(p []byte) (int, error) {
	select {
	case b.entered <- struct{}{}:
	default:
	}
	<-b.release
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func TestDropsCountedAndReported(t *testing.T) {
	bw := &blockingWriter{entered: make(chan struct{}, 1), release: make(chan struct{})}
	w := New(bw, 4)
	r := goldenRecords[0]
	if !w.Enqueue(&r) {
		t.Fatal("first Enqueue refused")
	}
	// Wait until the writer is stuck writing the first record.
	select {
	case <-bw.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("writer never wrote")
	}
	accepted, refused := 0, 0
	for range 10 {
		if w.Enqueue(&r) {
			accepted++
		} else {
			refused++
		}
	}
	if accepted != 4 || refused != 6 {
		t.Fatalf("with the writer blocked: %d accepted, %d refused; want 4 and 6", accepted, refused)
	}
	if st := w.Stats(); st.Dropped != 6 {
		t.Errorf("Stats.Dropped = %d, want 6", st.Dropped)
	}
	close(bw.release)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	verdicts, dropped := 0, uint64(0)
	sc := bufio.NewScanner(&bw.buf)
	for sc.Scan() {
		var m struct {
			Type  string
			Count uint64
		}
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		switch m.Type {
		case "verdict":
			verdicts++
		case "dropped":
			dropped += m.Count
		}
	}
	if verdicts != 5 || dropped != 6 {
		t.Errorf("output has %d verdict lines and dropped count %d; want 5 and 6", verdicts, dropped)
	}
	if st := w.Stats(); st != (Stats{Written: 5, Dropped: 6}) {
		t.Errorf("Stats = %+v", st)
	}
}

// TestReopenAfterRename rotates the log the way logrotate does: rename the
// file, then ask the writer to reopen its path.
func TestReopenAfterRename(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "trace.log")
	w, err := Open(path, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := goldenRecords[0]
	r.Note = "before"
	w.Enqueue(&r)
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err != nil {
		t.Fatal(err)
	}
	r.Note = "after"
	w.Enqueue(&r)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{path + ".1": `"note":"before"`, path: `"note":"after"`} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(string(b), "\n"); lines != 1 || !strings.Contains(string(b), want) {
			t.Errorf("%s holds %d lines %q; want one line with %s", filepath.Base(file), lines, b, want)
		}
	}
}

func TestReopenFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "trace.log")
	if err := os.Mkdir(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	w, err := Open(path, 16)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Dir(path), filepath.Join(dir, "moved")); err != nil {
		t.Fatal(err)
	}
	if err := w.Reopen(); err == nil {
		t.Error("Reopen into a vanished directory succeeded")
	}
	r := goldenRecords[0]
	w.Enqueue(&r)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "moved", "trace.log"))
	if strings.Count(string(b), "\n") != 1 {
		t.Errorf("old file holds %q; want the record written after the failed Reopen", b)
	}
}

func TestCloseFlushesEverything(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace.log")
	w, err := Open(path, 1000)
	if err != nil {
		t.Fatal(err)
	}
	r := goldenRecords[1]
	for range 1000 {
		if !w.Enqueue(&r) {
			t.Fatal("Enqueue refused below the buffer size")
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "\n"); n != 1000 {
		t.Errorf("file has %d lines after Close, want 1000", n)
	}
	if w.Enqueue(&r) {
		t.Error("Enqueue after Close accepted")
	}
	if err := w.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestDisabled(t *testing.T) {
	w, err := Open("", 0)
	if err != nil {
		t.Fatal(err)
	}
	r := goldenRecords[0]
	if w.Enabled() || !w.Enqueue(&r) {
		t.Error("disabled writer: Enabled or refused a record")
	}
	w.Reload(goldenReloads[0])
	if err := errorsJoin(w.Flush(), w.Reopen(), w.Close()); err != nil {
		t.Error(err)
	}
	if st := w.Stats(); st != (Stats{}) {
		t.Errorf("disabled writer counted %+v", st)
	}
	var nilw *Writer
	if nilw.Enabled() || !nilw.Enqueue(&r) || nilw.Close() != nil {
		t.Error("nil writer misbehaves")
	}
}

func errorsJoin(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// failingWriter fails every write.
type failingWriter struct{}

func (failingWriter) Write([]byte) (int, error) { return 0, io.ErrShortWrite }

func TestWriteErrorsCounted(t *testing.T) {
	w := New(failingWriter{}, 8)
	r := goldenRecords[0]
	w.Enqueue(&r)
	if err := w.Flush(); err == nil {
		t.Error("Flush reported no error from a failing output")
	}
	if err := w.Close(); err == nil {
		t.Errorf("Close with the output still failing reported no error")
	}
	if st := w.Stats(); st.Errors == 0 || st.Written != 0 || st.Dropped != 1 {
		t.Errorf("Stats = %+v, want Errors > 0, Written 0, Dropped 1", st)
	}
}

func TestEnqueueNoAllocs(t *testing.T) {
	w := New(io.Discard, 1<<16)
	defer w.Close()
	r := goldenRecords[0]
	n := testing.AllocsPerRun(1000, func() {
		w.Enqueue(&r)
	})
	if n != 0 {
		t.Errorf("Enqueue allocated %v times per call, want 0", n)
	}
}

func TestFormatNoAllocs(t *testing.T) {
	buf := make([]byte, 0, 1024)
	n := testing.AllocsPerRun(1000, func() {
		for i := range goldenRecords {
			buf = appendRecord(buf[:0], &goldenRecords[i])
		}
	})
	if n != 0 {
		t.Errorf("appendRecord allocated %v times per run, want 0", n)
	}
}

func BenchmarkEnqueue(b *testing.B) {
	w := New(io.Discard, 1<<16)
	defer w.Close()
	r := goldenRecords[0]
	b.ReportAllocs()
	for b.Loop() {
		w.Enqueue(&r)
	}
}

func BenchmarkFormat(b *testing.B) {
	buf := make([]byte, 0, 1024)
	r := goldenRecords[0]
	b.ReportAllocs()
	for b.Loop() {
		buf = appendRecord(buf[:0], &r)
	}
	b.SetBytes(int64(len(buf)))
}

func TestZeroTimeStamped(t *testing.T) {
	var out bytes.Buffer
	w := New(&out, 4)
	w.now = func() time.Time { return t0 }
	r := goldenRecords[3]
	r.Time = time.Time{}
	w.Enqueue(&r)
	w.Close()
	if !strings.HasPrefix(out.String(), `{"time":"2026-03-04T05:06:07.123456789Z",`) {
		t.Errorf("record without a time was not stamped by the writer: %s", out.String())
	}
}

// memFile is an output like a regular file on a filesystem that fills up:
// writes beyond its space are short (ENOSPC), and it can be truncated.
type memFile struct {
	mu    sync.Mutex
	data  []byte
	space int // bytes that still fit; <0: unlimited
	fails int // failed writes
	rng   *rand.Rand
}

func (f *memFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.space < 0 || len(p) <= f.space {
		f.data = append(f.data, p...)
		if f.space >= 0 {
			f.space -= len(p)
		}
		return len(p), nil
	}
	n := f.space
	f.data = append(f.data, p[:n]...)
	f.space = 0
	f.fails++
	return n, syscall.ENOSPC
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return memInfo(len(f.data)), nil
}

func (f *memFile) Truncate(n int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if int(n) < len(f.data) {
		f.space += len(f.data) - int(n)
		f.data = f.data[:n]
	}
	return nil
}

func (f *memFile) setSpace(n int) { f.mu.Lock(); f.space = n; f.mu.Unlock() }

type memInfo int

func (m memInfo) Name() string       { return "mem" }
func (m memInfo) Size() int64        { return int64(m) }
func (m memInfo) Mode() os.FileMode  { return 0o640 }
func (m memInfo) ModTime() time.Time { return time.Time{} }
func (m memInfo) IsDir() bool        { return false }
func (m memInfo) Sys() any           { return nil }

// checkOutput parses every line: it must all be JSON (no torn line), and it
// returns the verdict lines and the sum of the "dropped" counts.
func checkOutput(t *testing.T, b []byte) (verdicts, dropped uint64) {
	t.Helper()
	for i, l := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if l == "" && len(b) == 0 {
			continue
		}
		var m struct {
			Type  string
			Count uint64
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %d is not JSON (torn?): %q", i+1, l)
		}
		switch m.Type {
		case "verdict":
			verdicts++
		case "dropped":
			dropped += m.Count
		}
	}
	return
}

// The counters match the file exactly (issue 13, case 6): whatever mix of
// full filesystem, space coming back, a small queue and bursts, the file
// holds exactly Written verdict lines and no torn line; Written + Dropped
// is every record offered; once writes work again, the "dropped" lines add
// up to Dropped. Before, a write that failed after bufio had taken the
// lines counted them as written, and left a torn line in the file.
func TestCountersMatchFile(t *testing.T) {
	for seed := int64(1); seed <= 40; seed++ {
		rng := rand.New(rand.NewSource(seed))
		f := &memFile{space: rng.Intn(4000), rng: rng}
		w := New(f, 1+rng.Intn(64))
		r := goldenRecords[0]
		offered := uint64(0)
		for step := 0; step < 30; step++ {
			switch rng.Intn(5) {
			case 0:
				f.setSpace(rng.Intn(3000)) // space comes and goes
			case 1:
				w.Flush()
			default:
				for n := rng.Intn(200); n > 0; n-- {
					r.Rule = int32(rng.Intn(1 << 20)) // lines of varying length
					w.Enqueue(&r)
					offered++
				}
			}
		}
		f.setSpace(-1) // space returns for good
		w.Close()      // may report an earlier write error
		st := w.Stats()
		verdicts, dropped := checkOutput(t, f.data)
		if verdicts != st.Written || dropped != st.Dropped || st.Written+st.Dropped != offered {
			t.Fatalf("seed %d: file has %d verdict lines and reports %d dropped; Stats %+v; %d offered",
				seed, verdicts, dropped, st, offered)
		}
		if f.fails > 0 && st.Errors == 0 {
			t.Fatalf("seed %d: %d failed writes, Errors 0", seed, f.fails)
		}
	}
}

// pipeWriter fails like a pipe whose reader went away.
type pipeWriter struct{ n int }

func (p *pipeWriter) Write(b []byte) (int, error) { p.n++; return 0, syscall.EPIPE }

// A reader that went away (EPIPE) loses lines: they are dropped, not written.
func TestBrokenPipeIsNotWritten(t *testing.T) {
	w := New(&pipeWriter{}, 8)
	r := goldenRecords[0]
	for range 3 {
		w.Enqueue(&r)
	}
	if err := w.Flush(); !errors.Is(err, syscall.EPIPE) {
		t.Errorf("Flush: %v, want EPIPE", err)
	}
	w.Close()
	if st := w.Stats(); st.Written != 0 || st.Dropped != 3 || st.Errors == 0 {
		t.Errorf("Stats %+v, want 0 written, 3 dropped, errors", st)
	}
}

// The first failed write is logged at once, and the recovery too.
func TestWriteFailureLoggedAtOnce(t *testing.T) {
	f := &memFile{space: 100}
	w := New(f, 8)
	var logb syncBuffer
	w.SetLogger(slog.New(slog.NewTextHandler(&logb, nil)))
	r := goldenRecords[0]
	w.Enqueue(&r)
	w.Flush()
	if !strings.Contains(logb.String(), "trace write failed") || !strings.Contains(logb.String(), "no space left on device") {
		t.Errorf("log after the failure:\n%s", logb.String())
	}
	f.setSpace(-1)
	w.Enqueue(&r)
	w.Flush()
	if !strings.Contains(logb.String(), "trace writes work again") || !strings.Contains(logb.String(), "lost_records=1") {
		t.Errorf("log after the recovery:\n%s", logb.String())
	}
	w.Close()
	if v, d := checkOutput(t, f.data); v != 1 || d != 1 {
		t.Errorf("file: %d verdicts, %d reported dropped; want 1 and 1:\n%s", v, d, f.data)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// A FIFO as trace file is refused without blocking (issue 13, case 4: it
// held start-up in open(2) after the hooks were live).
func TestOpenRefusesFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		w, err := Open(p, 8)
		if err == nil {
			w.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Open(FIFO) = %v, want a refusal", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Open(FIFO) blocked")
	}
}
