package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigPermProblems(t *testing.T) {
	for _, c := range []struct {
		name     string
		fileMode os.FileMode
		dirMode  os.FileMode
		want     string // "" = accepted
	}{
		{"owner-only file", 0o600, 0o755, ""},
		{"world-readable file", 0o644, 0o755, ""},
		{"group-readable file (packaged mode)", 0o640, 0o750, ""},
		{"group-writable file", 0o664, 0o755, "writable by its group (mode 0664)"},
		{"world-writable file", 0o646, 0o755, "writable by others (mode 0646)"},
		{"group- and world-writable file", 0o666, 0o755, "writable by group and others"},
		{"world-writable directory", 0o644, 0o777, "writable by others (mode 0777) without the sticky bit"},
		{"world-writable sticky directory", 0o644, 0o777 | os.ModeSticky, ""},
		{"group-writable directory", 0o644, 0o775, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			d := filepath.Join(t.TempDir(), "etc")
			if err := os.Mkdir(d, 0o700); err != nil {
				t.Fatal(err)
			}
			f := filepath.Join(d, "nfgate.toml")
			if err := os.WriteFile(f, nil, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(f, c.fileMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(d, c.dirMode); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(configPermProblems([]string{f}), "\n")
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

func TestConfigPermProblemsChecksIncludesAndSymlinkTargets(t *testing.T) {
	root := t.TempDir()
	safe := filepath.Join(root, "etc")
	open := filepath.Join(root, "drop")
	for _, d := range []string{safe, open} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.Chmod(open, 0o777)
	main := filepath.Join(safe, "nfgate.toml")
	inc := filepath.Join(safe, "policies.toml")
	os.WriteFile(main, nil, 0o644)
	os.WriteFile(inc, nil, 0o644)
	os.Chmod(inc, 0o666)
	target := filepath.Join(open, "real.toml")
	os.WriteFile(target, nil, 0o644)
	link := filepath.Join(safe, "linked.toml")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	got := configPermProblems([]string{main, inc, link})
	if len(got) != 2 || !strings.HasPrefix(got[0], inc+": writable") || !strings.HasPrefix(got[1], open+": directory of "+link) {
		t.Errorf("problems:\n%s", strings.Join(got, "\n"))
	}
}

func TestCheckWarnsAboutWritableConfig(t *testing.T) {
	d := t.TempDir()
	f := filepath.Join(d, "nfgate.toml")
	if err := os.WriteFile(f, []byte("[gateway]\nnodeName = \"gw\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chmod(f, 0o664)
	code, out, _ := runCheckArgs("--config", f, "--host-interfaces=false")
	if code != 0 || !strings.Contains(out, "Warnings:") || !strings.Contains(out, "writable by its group (mode 0664)") ||
		!strings.Contains(out, "`nfgate run` refuses it") {
		t.Errorf("exit %d\n%s", code, out)
	}
	_, _, errs, _ := loadLive(f)
	if len(errs) != 1 || !strings.Contains(errs[0], f+": writable by its group") {
		t.Errorf("run's loader: %q, want a refusal", errs)
	}
	os.Chmod(f, 0o644)
	if l, _, errs, _ := loadLive(f); l == nil {
		t.Errorf("after chmod 644: %q", errs)
	}
}
