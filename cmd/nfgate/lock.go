package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// One nfgate per network namespace. Hooks, queues and conntrack marks
// belong to a network namespace, so the lock does too: the daemon takes
// an exclusive flock(2) on <lock-dir>/netns-<inode>.lock before it reads
// the configuration or touches the kernel, and holds it until it exits (the
// kernel drops it when the process dies, however it dies). A second
// `nfgate run` in the same namespace exits with an error naming the first
// one's pid, having changed nothing; `nfgate cleanup` refuses while the
// lock is held, unless --force (then the running daemon restores its hooks
// within seconds: engine/heal.go). nginx and HAProxy do the same with
// their pid files.

// DefaultLockDir is where the lock files live (the unit's RuntimeDirectory).
const DefaultLockDir = "/run/nfgate"

// netnsID identifies the current network namespace.
func netnsID() (uint64, error) {
	fi, err := os.Stat("/proc/self/ns/net")
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errors.New("no inode for /proc/self/ns/net")
	}
	return st.Ino, nil
}

// lockFile is the lock file of the current network namespace in dir.
func lockFile(dir string) (string, error) {
	id, err := netnsID()
	if err != nil {
		return "", fmt.Errorf("lock: network namespace: %w", err)
	}
	return filepath.Join(dir, "netns-"+strconv.FormatUint(id, 10)+".lock"), nil
}

// instanceLock is a held lock.
type instanceLock struct {
	f    *os.File
	path string
}

// errLocked says another process holds the lock.
type errLocked struct {
	path string
	pid  int
}

func (e *errLocked) Error() string {
	who := "another process"
	if e.pid > 0 {
		who = fmt.Sprintf("process %d", e.pid)
		if name, err := processName(e.pid); err == nil {
			who += " (" + name + ")"
		}
	}
	return fmt.Sprintf("%s holds %s: an nfgate daemon already runs in this network namespace", who, e.path)
}

// takeLock takes the lock at path without waiting and writes the pid into
// it. A lock file that was replaced between open and flock (a daemon
// exiting removes its file) is opened again, so two processes never both
// believe they hold it.
func takeLock(path string) (*instanceLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for tries := 0; ; tries++ {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock: %w", err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			pid := readPid(f)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, &errLocked{path, pid}
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			f.Truncate(0)
			f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
			return &instanceLock{f, path}, nil
		}
		f.Close()
		if tries > 10 {
			return nil, fmt.Errorf("lock %s: the file keeps being replaced", path)
		}
	}
}

func readPid(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pid
}

// release removes the lock file and drops the lock (removing it first,
// while still held, so no one locks a file that is about to vanish).
func (l *instanceLock) release() {
	if l == nil {
		return
	}
	os.Remove(l.path)
	l.f.Close()
}
