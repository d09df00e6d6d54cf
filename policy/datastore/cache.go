package datastore

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// cacheFile is the on-disk form of the last good resource set.
type cacheFile struct {
	Version   int          `json:"version"`
	Revision  int64        `json:"revision"`
	Saved     time.Time    `json:"saved"`
	Checksum  string       `json:"checksum"` // SHA-256 over keys and values
	Resources []cachedItem `json:"resources"`
}

type cachedItem struct {
	Key         string `json:"key"`
	ModRevision int64  `json:"modRevision"`
	Value       string `json:"value"` // as stored in etcd
}

func cacheChecksum(items []cachedItem) string {
	h := sha256.New()
	for _, it := range items {
		fmt.Fprintf(h, "%d:%s\n%d:%s\n", len(it.Key), it.Key, len(it.Value), it.Value)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// writeCache saves resources atomically: a temporary file in the same
// directory, fsynced, renamed over the old one, and the directory fsynced.
// The file is 0600: policies can be sensitive.
func writeCache(path string, rev int64, res []Resource) error {
	items := make([]cachedItem, len(res))
	for i, r := range res {
		items[i] = cachedItem{Key: r.Key, ModRevision: r.ModRevision, Value: string(r.Value)}
	}
	data, err := json.Marshal(cacheFile{Version: 1, Revision: rev, Saved: time.Now().UTC(), Checksum: cacheChecksum(items), Resources: items})
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// readCache loads a cache written by writeCache.
func readCache(path, prefix string) (rev int64, saved time.Time, res map[string]Resource, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, time.Time{}, nil, err
	}
	var c cacheFile
	if err := json.Unmarshal(data, &c); err != nil {
		return 0, time.Time{}, nil, fmt.Errorf("cache %s is corrupt: %v", path, err)
	}
	if c.Version != 1 {
		return 0, time.Time{}, nil, fmt.Errorf("cache %s has version %d, want 1", path, c.Version)
	}
	if cacheChecksum(c.Resources) != c.Checksum {
		return 0, time.Time{}, nil, fmt.Errorf("cache %s is corrupt: checksum mismatch", path)
	}
	res = make(map[string]Resource, len(c.Resources))
	for _, it := range c.Resources {
		if r, ok := newResource(prefix, it.Key, []byte(it.Value), it.ModRevision); ok {
			res[r.Key] = r
		}
	}
	return c.Revision, c.Saved, res, nil
}
