package main

import (
	"fmt"
	"os"
	"path/filepath"
)

// configPermProblems returns one message per configuration file, or
// directory holding one, that someone other than its owner could change:
// a file writable by group or others, or a directory writable by others
// without the sticky bit (anyone could replace the file). The daemon
// refuses such a configuration, since whoever can write it decides what
// the firewall lets through; `check` warns.
func configPermProblems(files []string) []string {
	var out []string
	seenDir := map[string]bool{}
	dir := func(d, file string) {
		if seenDir[d] {
			return
		}
		seenDir[d] = true
		fi, err := os.Stat(d)
		if err != nil {
			return
		}
		if m := fi.Mode(); m&0o002 != 0 && m&os.ModeSticky == 0 {
			out = append(out, fmt.Sprintf("%s: directory of %s is writable by others (mode %04o) without the sticky bit: anyone could replace the configuration (chmod o-w %s)",
				d, file, m.Perm(), d))
		}
	}
	for _, f := range files {
		fi, err := os.Stat(f)
		if err != nil {
			out = append(out, fmt.Sprintf("%s: %v", f, err))
			continue
		}
		if m := fi.Mode().Perm(); m&0o022 != 0 {
			who := "group and others"
			switch m & 0o022 {
			case 0o020:
				who = "its group"
			case 0o002:
				who = "others"
			}
			out = append(out, fmt.Sprintf("%s: writable by %s (mode %04o); the firewall's configuration must be writable only by its owner (chmod go-w %s)",
				f, who, m, f))
		}
		dir(filepath.Dir(f), f)
		if r, err := filepath.EvalSymlinks(f); err == nil {
			dir(filepath.Dir(r), f)
		}
	}
	return out
}
