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
		{"world-writable directory", 0o644, 0o777, "directory of " + "FILE is writable by group and others (mode 0777)"},
		{"world-writable sticky directory", 0o644, 0o777 | os.ModeSticky, "writable by group and others (mode 1777, sticky): anyone could add a file"},
		{"others-writable sticky directory", 0o644, 0o755 | 0o002 | os.ModeSticky, "writable by others (mode 1757, sticky)"},
		{"group-writable directory", 0o644, 0o775, "directory of FILE is writable by its group (mode 0775)"},
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
			want := strings.ReplaceAll(c.want, "FILE", f)
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, want) {
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

// Issue 13, case 5: owners and every directory up to / count. Each of these
// was accepted before: a file owned by nobody, an include reached through a
// symlink whose target's parent is world-writable higher up, a directory
// writable by its group, a glob include into a sticky world-writable
// directory (where nobody had put an allow-all policy), a directory on the
// way owned by nobody.
func TestConfigTrust(t *testing.T) {
	const nobody = 65534
	root := t.TempDir()
	mk := func(rel string, mode os.FileMode, uid int) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		os.Lchown(p, uid, -1)
		return p
	}
	file := func(rel string, uid int) string {
		p := filepath.Join(root, rel)
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Lchown(p, uid, -1)
		return p
	}
	me := os.Geteuid()
	if me != 0 {
		t.Skip("needs root to give files to another owner")
	}
	mk("etc", 0o755, 0)
	mk("open/deep", 0o755, 0)
	os.Chmod(filepath.Join(root, "open"), 0o777)
	mk("drop", 0o777|os.ModeSticky, 0)
	mk("grp", 0o775, 0)
	mk("theirs", 0o755, nobody)
	mk("tmp", 0o777|os.ModeSticky, 0)
	mk("tmp/mine", 0o700, 0)
	cases := []struct {
		name  string
		files []string
		want  string // "" = accepted
	}{
		{"root-owned file in a root-owned 0755 directory", []string{file("etc/ok.toml", 0)}, ""},
		{"file owned by nobody, mode 0644", []string{file("etc/nobody.toml", nobody)}, "owned by uid 65534"},
		{"file in a group-writable directory", []string{file("grp/a.toml", 0)}, "writable by its group (mode 0775)"},
		{"glob include into a sticky world-writable directory", []string{file("drop/allow-all.yaml", nobody)}, "(mode 1777, sticky): anyone could add a file"},
		{"a world-writable directory higher up", []string{file("open/deep/a.toml", 0)}, "directory on the path of"},
		{"a directory on the way owned by nobody", []string{file("theirs/a.toml", 0)}, "owned by uid 65534: only root"},
		{"sticky world-writable directory above a root-owned one (/tmp)", []string{file("tmp/mine/a.toml", 0)}, ""},
	}
	link := filepath.Join(root, "etc", "linked.toml")
	os.Symlink(filepath.Join(root, "open/deep/a.toml"), link)
	cases = append(cases, struct {
		name  string
		files []string
		want  string
	}{"include through a symlink into a tree under a 0777 directory", []string{link}, filepath.Join(root, "open") + ": directory on the path of " + link})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := strings.Join(configPermProblems(c.files), "\n")
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Errorf("got:\n%s\nwant: %q", got, c.want)
			}
		})
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
