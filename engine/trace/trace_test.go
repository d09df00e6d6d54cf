package trace

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	if err := w.Close(); err != nil {
		t.Errorf("Close after a reported error: %v", err)
	}
	if st := w.Stats(); st.Errors == 0 {
		t.Errorf("Stats = %+v, want Errors > 0", st)
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
