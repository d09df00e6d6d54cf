package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The copy of what went live loads on its own, includes and all, after
// the files on disk went bad; a copy of another configuration, or one
// others can write, is refused.
func TestLastGoodRoundTrip(t *testing.T) {
	dir := t.TempDir()
	main := filepath.Join(dir, "nfgate.toml")
	os.Mkdir(filepath.Join(dir, "pol"), 0o755)
	os.WriteFile(main, []byte("include = [\"pol/*.toml\"]\n[gateway]\nnodeName = \"gw\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "pol", "a.toml"), []byte("[[globalNetworkPolicy]]\nname = \"a\"\nselector = \"all()\"\n"), 0o644)
	lv := loadLiveFull(main)
	if lv.l == nil {
		t.Fatalf("load: %v", lv.errs)
	}
	copyPath := filepath.Join(dir, "state", "last-good.json")
	if err := saveLastGood(copyPath, main, lv.files, lv.l.Hash); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(main, []byte("this is = = not toml"), 0o644)
	if bad := loadLiveFull(main); bad.l != nil {
		t.Fatal("the broken file loaded")
	}
	lg, err := loadLastGood(copyPath, main)
	if err != nil {
		t.Fatal(err)
	}
	if lg.lv.l.Hash != lv.l.Hash || len(lg.lv.l.Config.Policies) != 1 || !strings.Contains(strings.Join(lg.lv.files, " "), "last good copy") {
		t.Errorf("last good: hash %s (want %s), %d policies, files %v", lg.lv.l.Hash, lv.l.Hash, len(lg.lv.l.Config.Policies), lg.lv.files)
	}
	if _, err := loadLastGood(copyPath, filepath.Join(dir, "other.toml")); err == nil || !strings.Contains(err.Error(), "holds a copy of") {
		t.Errorf("another main file: %v", err)
	}
	os.Chmod(copyPath, 0o666)
	if _, err := loadLastGood(copyPath, main); err == nil || !strings.Contains(err.Error(), "writable by") {
		t.Errorf("a world-writable copy: %v", err)
	}
	// Files that changed since they were loaded are not saved.
	if err := saveLastGood(copyPath, main, lv.files, lv.l.Hash); err == nil || !strings.Contains(err.Error(), "changed since") {
		t.Errorf("save of changed files: %v", err)
	}
}
