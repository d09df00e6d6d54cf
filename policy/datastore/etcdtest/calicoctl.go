package etcdtest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// CalicoDir is the directory of the Calico v3.32.1 kit (calicoctl,
// calico-felix; see its README): $NFGATE_CALICO_DIR, else
// <repository root>/../shared/calico, else /work/shared/calico; "" when
// none holds calicoctl. The repository root is the nearest directory above
// the working directory with a go.mod.
func CalicoDir() string {
	if d := os.Getenv("NFGATE_CALICO_DIR"); d != "" {
		return d
	}
	var cands []string
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				cands = append(cands, filepath.Join(d, "..", "shared", "calico"))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	cands = append(cands, "/work/shared/calico")
	for _, d := range cands {
		if isExec(filepath.Join(d, "calicoctl")) {
			return filepath.Clean(d)
		}
	}
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// Calicoctl runs the real calicoctl against one etcd server, as a Calico
// user does: DATASTORE_TYPE=etcdv3, ETCD_ENDPOINTS=the server.
type Calicoctl struct {
	Bin      string
	Endpoint string
}

// NeedCalicoctl returns a calicoctl for s. The test is skipped, saying
// where it looked, when the kit is absent; it fails when NFGATE_CALICO_DIR
// names a directory without calicoctl.
func (s *Server) NeedCalicoctl(tb testing.TB) *Calicoctl {
	tb.Helper()
	dir := CalicoDir()
	if dir == "" {
		tb.Skip("Calico's calicoctl v3.32.1 kit is absent (looked in $NFGATE_CALICO_DIR, <repo>/../shared/calico and /work/shared/calico)")
	}
	bin := filepath.Join(dir, "calicoctl")
	if !isExec(bin) {
		tb.Fatalf("NFGATE_CALICO_DIR=%s holds no executable calicoctl", dir)
	}
	return &Calicoctl{Bin: bin, Endpoint: s.Endpoint}
}

// Run runs calicoctl with args (stdin, when not "", on its standard
// input) and returns its combined output; at most 30s.
func (c *Calicoctl) Run(stdin string, args ...string) (string, error) {
	cmd := exec.Command(c.Bin, args...)
	cmd.Env = append(os.Environ(), "DATASTORE_TYPE=etcdv3", "ETCD_ENDPOINTS="+c.Endpoint)
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		<-done
		return out.String(), fmt.Errorf("calicoctl %s: no answer in 30s", strings.Join(args, " "))
	}
}

// Apply is `calicoctl apply -f -` of yaml; tb fails if calicoctl does.
func (c *Calicoctl) Apply(tb testing.TB, yaml string) {
	tb.Helper()
	if out, err := c.Run(yaml, "apply", "-f", "-"); err != nil {
		tb.Fatalf("calicoctl apply: %v\n%s\ninput:\n%s", err, out, yaml)
	}
}

// Delete is `calicoctl delete kind name`; tb fails if calicoctl does.
func (c *Calicoctl) Delete(tb testing.TB, kind, name string) {
	tb.Helper()
	if out, err := c.Run("", "delete", kind, name); err != nil {
		tb.Fatalf("calicoctl delete %s %s: %v\n%s", kind, name, err, out)
	}
}
