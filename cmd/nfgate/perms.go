package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// configPermProblems returns one message per configuration file, or
// directory on the way to one, that someone other than root (or the uid the
// daemon runs as) could change; whoever can write the configuration decides
// what the firewall lets through. The rules are sshd's StrictModes and
// sudo's for sudoers:
//
//   - each file is owned by root or the daemon's uid and writable by
//     nobody else (mode & 022 == 0);
//   - each directory from the file's up to / is owned by root or the
//     daemon's uid and writable by nobody else, except that a directory
//     above the file's own may be world- or group-writable with the sticky
//     bit (/tmp): there only an entry's owner can rename or delete it, and
//     the entry below it is checked to be trusted;
//   - the file's own directory may not be writable by others even with the
//     sticky bit: anyone could add a file a glob include picks up, or
//     create one the configuration names but that does not exist yet.
//
// A symbolic link is followed, and both the path as written and the
// resolved path are checked. The daemon refuses a configuration with any
// problem (at start and on reload); `check` prints them as warnings.
func configPermProblems(files []string) []string {
	return permProblems(files, trustedUID)
}

// trustedUID reports whether uid may own the configuration.
func trustedUID(uid uint32) bool { return uid == 0 || uid == uint32(os.Geteuid()) }

func permProblems(files []string, trusted func(uint32) bool) []string {
	var out []string
	type dirKey struct {
		dir  string
		leaf bool
	}
	seen := map[dirKey]bool{}
	owner := func(fi fs.FileInfo) (uint32, bool) {
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return 0, false
		}
		return st.Uid, true
	}
	// dir checks directory d (leaf: it holds the file itself).
	dir := func(d, file string, leaf bool) {
		k := dirKey{d, leaf}
		if seen[k] {
			return
		}
		seen[k] = true
		fi, err := os.Lstat(d)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", d, err))
			return
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			// A link on the written path: the directory holding it is
			// checked; where it leads is checked as the resolved path.
			return
		}
		if uid, ok := owner(fi); ok && !trusted(uid) {
			out = append(out, fmt.Sprintf("%s: directory on the path of %s is owned by uid %d: only root (or the daemon's uid %d) may own it (chown root %s)",
				d, file, uid, os.Geteuid(), d))
		}
		m := fi.Mode()
		w := m.Perm() & 0o022
		switch {
		case w == 0:
		case leaf && m&fs.ModeSticky != 0:
			out = append(out, fmt.Sprintf("%s: directory of %s is writable by %s (mode %s, sticky): anyone could add a file an include picks up (chmod go-w %s, or move the configuration)",
				d, file, writers(w), modeString(m), d))
		case leaf:
			out = append(out, fmt.Sprintf("%s: directory of %s is writable by %s (mode %s): they could replace the configuration (chmod go-w %s)",
				d, file, writers(w), modeString(m), d))
		case m&fs.ModeSticky == 0:
			out = append(out, fmt.Sprintf("%s: directory on the path of %s is writable by %s (mode %s) without the sticky bit: they could replace what lies below it (chmod go-w %s)",
				d, file, writers(w), modeString(m), d))
		}
	}
	chain := func(p, file string) {
		p = filepath.Clean(p)
		dir(filepath.Dir(p), file, true)
		for d := filepath.Dir(filepath.Dir(p)); ; d = filepath.Dir(d) {
			dir(d, file, false)
			if d == "/" || d == "." {
				break
			}
		}
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		if uid, ok := owner(fi); ok && !trusted(uid) {
			out = append(out, fmt.Sprintf("%s: owned by uid %d; the firewall's configuration must be owned by root (or the daemon's uid %d) (chown root %s)",
				f, uid, os.Geteuid(), f))
		}
		if m := fi.Mode().Perm(); m&0o022 != 0 {
			out = append(out, fmt.Sprintf("%s: writable by %s (mode %04o); the firewall's configuration must be writable only by its owner (chmod go-w %s)",
				f, writers(m&0o022), m, f))
		}
		abs, err := filepath.Abs(f)
		if err != nil {
			continue
		}
		chain(abs, f)
		if r, err := filepath.EvalSymlinks(abs); err == nil && r != abs {
			chain(r, f)
		}
	}
	return out
}

func writers(w fs.FileMode) string {
	switch w {
	case 0o020:
		return "its group"
	case 0o002:
		return "others"
	}
	return "group and others"
}

func modeString(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	return fmt.Sprintf("%04o", v)
}
