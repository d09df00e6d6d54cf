package main

import (
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// One daemon per network namespace: a second lock attempt fails, naming
// the holder; once released, the lock can be taken again.
func TestSingleInstanceLock(t *testing.T) {
	dir := t.TempDir()
	path, err := lockFile(dir)
	if err != nil {
		t.Fatal(err)
	}
	lk, err := takeLock(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
		t.Errorf("lock file holds %q, want our pid", b)
	}
	_, err = takeLock(path)
	var held *errLocked
	if !errors.As(err, &held) || held.pid != os.Getpid() || !strings.Contains(err.Error(), "an nfgate daemon already runs in this network namespace") {
		t.Fatalf("second lock: %v", err)
	}
	lk.release()
	lk2, err := takeLock(path)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	lk2.release()
}

// cleanup refuses while a daemon holds the lock, unless forced (issue 13,
// case 1: `nfgate cleanup` under a live daemon silently switched the
// firewall off).
func TestCleanupRefusesWhileADaemonRuns(t *testing.T) {
	removed := 0
	old := removeRules
	removeRules = func() error { removed++; return nil }
	t.Cleanup(func() { removeRules = old })
	dir := t.TempDir()
	path, _ := lockFile(dir)
	lk, err := takeLock(path)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := cleanup(dir, false, &stderr); code != 1 || removed != 0 || !strings.Contains(stderr.String(), "refusing") {
		t.Errorf("with a daemon: exit %d, removed %d, %s", code, removed, stderr.String())
	}
	stderr.Reset()
	if code := cleanup(dir, true, &stderr); code != 0 || removed != 1 || !strings.Contains(stderr.String(), "--force") {
		t.Errorf("forced: exit %d, removed %d, %s", code, removed, stderr.String())
	}
	lk.release()
	if code := cleanup(dir, false, &stderr); code != 0 || removed != 2 {
		t.Errorf("without a daemon: exit %d, removed %d", code, removed)
	}
}
