package config

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

const gwHead = "[gateway]\nnodeName = \"gw\"\n"

// loadWithin loads path and fails the test if that takes more than a few
// seconds (a blocking open) or allocates more than maxAlloc bytes (a parser
// blow-up); it returns the error text.
func loadWithin(t *testing.T, path string, maxAlloc uint64) string {
	t.Helper()
	type res struct {
		err   error
		alloc uint64
	}
	done := make(chan res, 1)
	go func() {
		var a, b runtime.MemStats
		runtime.ReadMemStats(&a)
		_, err := Load(path)
		runtime.ReadMemStats(&b)
		done <- res{err, b.TotalAlloc - a.TotalAlloc}
	}()
	select {
	case r := <-done:
		if r.alloc > maxAlloc {
			t.Errorf("loading %s allocated %d MB, more than %d MB", path, r.alloc>>20, maxAlloc>>20)
		}
		if r.err == nil {
			return ""
		}
		return r.err.Error()
	case <-time.After(10 * time.Second):
		t.Fatalf("loading %s did not return within 10s (blocked)", path)
		return ""
	}
}

func write(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The hostile inputs of issue 13 and their relatives: every one is an error
// naming file:line:col, found before a parser runs out of memory or a read
// blocks. Before the limits, the first two ran the TOML parser out of memory
// (a fatal error no daemon survives) and the FIFO blocked for ever.
func TestHostileInputs(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo.toml"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "dir.toml"), 0o755)
	deep := 10000
	cases := []struct {
		name, main, want string
	}{
		{"10,000-deep inline tables", gwHead + "[engine]\nfoo = " + strings.Repeat("{a=", deep) + "1" + strings.Repeat("}", deep) + "\n",
			"main.toml:4:194: nesting deeper than 64 levels"},
		{"200,000-part dotted key", gwHead + strings.Repeat("a.", 199999) + "a = 1\n",
			"main.toml:3:65: dotted key or table name with more than 32 parts"},
		{"200,000-part table header", gwHead + "[" + strings.Repeat("a.", 199999) + "a]\n",
			"main.toml:3:66: dotted key or table name with more than 32 parts"},
		{"100,000-deep arrays", gwHead + "x = " + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + "\n",
			"main.toml:3:68: nesting deeper than 64 levels"},
		{"a key of 100,000 bytes", gwHead + strings.Repeat("k", 100000) + " = 1\n",
			"main.toml:3:1: key longer than 1024 bytes"},
		{"a quoted key of 100,000 bytes", gwHead + "\"" + strings.Repeat("k", 100000) + "\" = 1\n",
			"main.toml:3:1: key longer than 1024 bytes"},
		{"include of a FIFO", "include = [\"fifo.toml\"]\n" + gwHead,
			"main.toml:1:12: include[0]: cannot read " + filepath.Join(dir, "fifo.toml") + ": not a regular file (a FIFO)"},
		{"include of a symlink to /dev/zero", "include = [\"zero.yaml\"]\n" + gwHead,
			"cannot read " + filepath.Join(dir, "zero.yaml") + ": not a regular file (a character device)"},
		{"include of a directory", "include = [\"dir.toml\"]\n" + gwHead,
			"not a regular file (a directory)"},
		{"YAML 100,000-deep flow", "include = [\"flow.yaml\"]\n" + gwHead,
			"flow.yaml:4:71: nesting deeper than 64 levels"},
		{"YAML 3,000-deep block", "include = [\"block.yaml\"]\n" + gwHead,
			"block.yaml:69:66: nesting deeper than 64 levels"},
		{"2 million list elements", gwHead + "x = [" + strings.Repeat("1,", 2_000_001) + "]\n",
			"more than 2000000 values in the configuration"},
		{"a million inline tables", gwHead + "x = [" + strings.Repeat("{a=1},", 1_000_000) + "]\n",
			"more than 2000000 values in the configuration"},
		{"YAML 2 million elements", "include = [\"many.yaml\"]\n" + gwHead,
			"many.yaml:4:3999987: more than 2000000 values in the configuration"},
	}
	gnp := "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: x}\n"
	write(t, dir, "flow.yaml", gnp+"spec: "+strings.Repeat("[", 100000)+strings.Repeat("]", 100000)+"\n")
	var b strings.Builder
	b.WriteString(gnp + "spec:\n")
	for i := 0; i < 3000; i++ {
		b.WriteString(strings.Repeat(" ", i+1) + "a:\n")
	}
	write(t, dir, "block.yaml", b.String())
	write(t, dir, "many.yaml", gnp+"spec: {x: ["+strings.Repeat("1,", 2_000_001)+"]}\n")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			main := write(t, dir, "main.toml", c.main)
			got := loadWithin(t, main, 64<<20)
			if !strings.Contains(got, c.want) {
				t.Errorf("got:\n%s\nwant it to contain %q", Sanitize(got, 500), c.want)
			}
			if strings.Contains(got, "[gateway]") {
				t.Errorf("spurious [gateway] error:\n%s", got)
			}
		})
	}
}

func TestFileAndByteLimits(t *testing.T) {
	defer func(f, tot int64, n int) { MaxFileBytes, MaxTotalBytes, MaxFiles = f, tot, n }(MaxFileBytes, MaxTotalBytes, MaxFiles)
	MaxFileBytes, MaxTotalBytes, MaxFiles = 1000, 2400, 5
	dir := t.TempDir()
	pad := "# " + strings.Repeat("x", 800) + "\n"
	for i := 0; i < 8; i++ {
		write(t, dir, fmt.Sprintf("p%d.toml", i), pad)
	}
	write(t, dir, "big.toml", pad+pad)
	main := write(t, dir, "main.toml", "include = [\"big.toml\"]\n"+gwHead)
	if got := loadWithin(t, main, 16<<20); !strings.Contains(got, "big.toml: file is 1606 bytes, more than the limit of 1000") {
		t.Errorf("per-file limit: %s", got)
	}
	main = write(t, dir, "main.toml", "include = [\"p0.toml\", \"p1.toml\", \"p2.toml\"]\n"+gwHead)
	if got := loadWithin(t, main, 16<<20); !strings.Contains(got, "p2.toml: the configuration's files add up to more than 2400 bytes") {
		t.Errorf("total limit: %s", got)
	}
	MaxTotalBytes = 1 << 20
	main = write(t, dir, "main.toml", "include = [\"p*.toml\"]\n"+gwHead)
	if got := loadWithin(t, main, 16<<20); !strings.Contains(got, "more than 5 files in the configuration") {
		t.Errorf("file count limit: %s", got)
	}
}

func TestRuleLimit(t *testing.T) {
	defer func(n int) { MaxRules = n }(MaxRules)
	MaxRules = 3
	var b strings.Builder
	b.WriteString(gwHead + "[[globalNetworkPolicy]]\nname = \"p\"\nselector = \"all()\"\n")
	for i := 0; i < 4; i++ {
		b.WriteString("[[globalNetworkPolicy.ingress]]\naction = \"Allow\"\n")
	}
	_, err := LoadBytes("main.toml", []byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), "main.toml: the configuration has 4 rules, more than nfgate's limit of 3") {
		t.Errorf("got %v", err)
	}
}

// A syntax error is reported alone: the main file was not understood, so
// nothing is said about what it lacks.
func TestSyntaxErrorAlone(t *testing.T) {
	_, err := LoadBytes("main.toml", []byte("[gateway]\nnodeName = \"gw\"\nfoo = = 1\n"))
	if err == nil {
		t.Fatal("no error")
	}
	if ce, _ := err.(Errors); len(ce) != 1 || ce[0].String() != "main.toml:3:7: expected value but found '=' instead" {
		t.Errorf("got:\n%v", err)
	}
}

// Values echoed in messages are shortened, and control and bidirectional
// characters are escaped, wherever the message comes from.
func TestMessagesAreShortAndEscaped(t *testing.T) {
	huge := strings.Repeat("(", 400_000)
	name := "evil\u202egnp\x1b[31m" + strings.Repeat("n", 300)
	text := gwHead + "[[globalNetworkPolicy]]\nname = \"" + strings.ReplaceAll(name, "\x1b", "\\u001b") + "\"\nselector = \"" + huge + "\"\n"
	_, err := LoadBytes("main.toml", []byte(text))
	if err == nil {
		t.Fatal("no error")
	}
	for _, d := range err.(Errors) {
		s := d.String()
		if len(s) > 2048 {
			t.Errorf("message of %d bytes: %.300s...", len(s), s)
		}
		if strings.ContainsAny(s, "\u202e\x1b") {
			t.Errorf("raw control characters in %q", s)
		}
	}
	all := err.Error()
	if !strings.Contains(all, `GlobalNetworkPolicy/evil\u202egnp\x1b[31m`) || !strings.Contains(all, `invalid selector "(((`) ||
		!strings.Contains(all, "more bytes]") {
		t.Errorf("want the name escaped and the selector cut with a marker:\n%s", all)
	}
}

func TestSanitize(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain", "plain"},
		{"a\u202eb\u2066c", `a\u202eb\u2066c`},
		{"tab\there\x00\x7f", `tab\x09here\x00\x7f`},
		{"bad\xffutf8", `bad\xffutf8`},
		{strings.Repeat("a", 30) + strings.Repeat("b", 30), strings.Repeat("a", 26) + "…[24 bytes left out]…" + strings.Repeat("b", 10)},
	} {
		if got := Sanitize(c.in, 40); got != c.want {
			t.Errorf("Sanitize(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
