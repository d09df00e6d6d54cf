package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nfgate/nfgate/policy/config"
)

// The last good configuration (run --last-good FILE). A configuration that
// is rejected at start must not leave the gateway without a policy: in
// failure mode closed, the kernel rules of the previous run stay and every
// new flow at a policed stage is dropped, and systemd restarting the daemon
// only reads the same file again. So after every configuration that goes
// live, run keeps a copy of its files (one JSON file, 0600); when the files
// are rejected at start, it enforces that copy instead, says so loudly (log,
// systemd STATUS "DEGRADED", stats last_reload.ok false with the errors,
// nfgate_last_reload_successful 0) and waits for a fixed file and a reload.
// This is what a reload does with a bad file (the running policy stays),
// carried across a restart. Fleet mode has its own cache of the datastore.

type lastGoodFile struct {
	Version int       `json:"version"`
	Main    string    `json:"main"`
	Hash    string    `json:"hash"` // the short hash the daemon reports
	Saved   time.Time `json:"saved"`
	Files   []struct {
		Name string `json:"name"`
		Data []byte `json:"data"`
	} `json:"files"`
}

// saveLastGood copies files (as the load that went live listed them, main
// first) into path. The files are read again; if they no longer hash to
// what went live (changed since), nothing is saved.
func saveLastGood(path, main string, files []string, hash string) error {
	lg := lastGoodFile{Version: 1, Main: filepath.Clean(main), Hash: hash, Saved: time.Now().UTC()}
	data, err := loadedFiles(files, hash)
	if err != nil {
		return err
	}
	for i, f := range files {
		lg.Files = append(lg.Files, struct {
			Name string `json:"name"`
			Data []byte `json:"data"`
		}{f, data[i]})
	}
	b, err := json.Marshal(&lg)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// loadedFiles reads the files of a load that went live again (as the load
// listed them, main first), as the loader reads them (config.ReadFile:
// bounded, regular files only, so a file swapped for a FIFO or a device
// cannot block or flood the daemon), and checks that they still hash to
// what went live: a file edited since would make a false copy. The last
// good configuration and the running copy (running.go) both keep what this
// returns.
func loadedFiles(files []string, hash string) ([][]byte, error) {
	h := sha256.New()
	out := make([][]byte, 0, len(files))
	for _, f := range files {
		b, err := config.ReadFile(f)
		if err != nil {
			return nil, err
		}
		h.Write(b)
		out = append(out, b)
	}
	if got := hex.EncodeToString(h.Sum(nil)[:4]); got != hash {
		return nil, fmt.Errorf("the files changed since they were loaded (hash %s, loaded %s)", got, hash)
	}
	return out, nil
}

type lastGood struct {
	lv    liveLoad
	saved time.Time
}

// loadLastGood loads and compiles the copy at path, which must be one of
// main, and trusted like a configuration file.
func loadLastGood(path, main string) (*lastGood, error) {
	if probs := configPermProblems([]string{path}); len(probs) > 0 {
		return nil, errors.New(probs[0])
	}
	b, err := config.ReadFileMax(path, 2*config.MaxTotalBytes+(1<<20))
	if err != nil {
		return nil, err
	}
	var lg lastGoodFile
	if err := json.Unmarshal(b, &lg); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	if lg.Version != 1 || len(lg.Files) == 0 {
		return nil, fmt.Errorf("%s: not a last good configuration", path)
	}
	if lg.Main != filepath.Clean(main) {
		return nil, fmt.Errorf("%s holds a copy of %s, not of %s", path, lg.Main, main)
	}
	files := map[string][]byte{}
	for _, f := range lg.Files {
		files[f.Name] = f.Data
	}
	defer tightGC()()
	ld, err := config.LoadFiles(lg.Main, files)
	lv := compileLoadedNoPerms(ld, err)
	if lv.l == nil {
		return nil, fmt.Errorf("%s: the copy does not load: %s", path, firstLine(lv.errs))
	}
	lv.files = append(lv.files[:len(lv.files):len(lv.files)], "(last good copy "+path+")")
	return &lastGood{lv: lv, saved: lg.Saved}, nil
}

// fleetConfig reports whether the main file has a [datastore] table.
func fleetConfig(path string) bool {
	ld, _ := config.Load(path)
	return ld != nil && ld.Datastore != nil
}
