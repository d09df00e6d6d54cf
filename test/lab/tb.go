//go:build linux

package lab

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// programTB lets the lab (built on test/netlab, which takes a testing.TB)
// run outside `go test`: Fatal and Skip stop the lab by panicking with a
// stop value that Main recovers, and cleanups run last-in first-out when
// the lab ends, whichever way it ends.
type programTB struct {
	testing.TB // never called: every method netlab uses is defined below

	mu       sync.Mutex
	cleanups []func()
	failed   bool
	dir      string
	done     bool
}

// stop is the panic value of Fatal and Skip.
type stop struct {
	msg  string
	skip bool
}

func (p *programTB) Helper()      {}
func (p *programTB) Name() string { return "nfgate-demo" }
func (p *programTB) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}
func (p *programTB) Logf(format string, a ...any) { fmt.Fprintf(os.Stderr, format+"\n", a...) }
func (p *programTB) Log(a ...any)                 { fmt.Fprintln(os.Stderr, a...) }
func (p *programTB) Errorf(format string, a ...any) {
	p.mu.Lock()
	p.failed = true
	p.mu.Unlock()
	p.Logf(format, a...)
}
func (p *programTB) Error(a ...any) { p.Errorf("%s", fmt.Sprint(a...)) }
func (p *programTB) Fatalf(format string, a ...any) {
	p.mu.Lock()
	p.failed = true
	p.mu.Unlock()
	panic(stop{msg: fmt.Sprintf(format, a...)})
}
func (p *programTB) Fatal(a ...any) { p.Fatalf("%s", fmt.Sprint(a...)) }
func (p *programTB) FailNow()       { p.Fatalf("failed") }
func (p *programTB) Fail()          { p.mu.Lock(); p.failed = true; p.mu.Unlock() }
func (p *programTB) Failed() bool   { p.mu.Lock(); defer p.mu.Unlock(); return p.failed }
func (p *programTB) Skip(a ...any)  { panic(stop{msg: fmt.Sprint(a...), skip: true}) }
func (p *programTB) Skipf(format string, a ...any) {
	panic(stop{msg: fmt.Sprintf(format, a...), skip: true})
}
func (p *programTB) SkipNow()      { panic(stop{msg: "skipped", skip: true}) }
func (p *programTB) Skipped() bool { return false }
func (p *programTB) TempDir() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dir == "" {
		d, err := os.MkdirTemp("", "nfgate-demo-")
		if err != nil {
			panic(stop{msg: err.Error()})
		}
		p.dir = d
		p.cleanups = append(p.cleanups, func() { os.RemoveAll(d) })
	}
	return p.dir
}
func (p *programTB) Setenv(k, v string) { os.Setenv(k, v) }

// runCleanups runs the registered cleanups once, newest first. It is safe
// to call from a signal handler while the lab is still running.
func (p *programTB) runCleanups() {
	p.mu.Lock()
	if p.done {
		p.mu.Unlock()
		return
	}
	p.done = true
	fs := p.cleanups
	p.cleanups = nil
	p.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
