// Package etcdtest runs a real etcd server (Debian's etcd-server) for tests
// and benchmarks: on loopback, random free ports, a temporary data
// directory, stopped in Cleanup.
package etcdtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// TLS, when set, makes the server require client certificates.
type TLS struct {
	CAFile, CertFile, KeyFile string // server certificate and the CA that signs clients
}

// Server is one etcd member.
type Server struct {
	Endpoint string // client URL
	Dir      string
	args     []string
	cmd      *exec.Cmd
	exited   chan struct{}
	tls      bool
	log      string
}

// Binary is the etcd executable, or "" when it is not installed.
func Binary() string {
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	return ""
}

// Start runs etcd; the test is skipped (not root) or failed (root, so CI
// should have installed it with .ci/deps.sh) when the binary is missing.
func Start(tb testing.TB, tlsCfg *TLS) *Server {
	tb.Helper()
	if Binary() == "" {
		if os.Geteuid() != 0 {
			tb.Skip("etcd is not installed (apt-get install etcd-server, or run .ci/deps.sh as root)")
		}
		tb.Fatal("etcd is not installed: run .ci/deps.sh (Debian package etcd-server)")
	}
	s, err := Run(tb.TempDir(), tlsCfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(s.Stop)
	return s
}

// Run starts etcd with its data and log in dir (for benchmarks; tests use
// Start). The caller stops it.
func Run(dir string, tlsCfg *TLS) (*Server, error) {
	bin := Binary()
	if bin == "" {
		return nil, errors.New("etcd is not installed (Debian package etcd-server)")
	}
	cport, err := freePort()
	if err != nil {
		return nil, err
	}
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	scheme := "http"
	if tlsCfg != nil {
		scheme = "https"
	}
	s := &Server{
		Endpoint: fmt.Sprintf("%s://127.0.0.1:%d", scheme, cport),
		Dir:      dir,
		tls:      tlsCfg != nil,
		log:      filepath.Join(dir, "etcd.log"),
	}
	peer := fmt.Sprintf("http://127.0.0.1:%d", pport)
	s.args = []string{
		bin, "--name", "t", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", s.Endpoint, "--advertise-client-urls", s.Endpoint,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "t=" + peer, "--initial-cluster-state", "new",
		"--logger", "zap", "--log-level", "error",
	}
	if tlsCfg != nil {
		s.args = append(s.args, "--cert-file", tlsCfg.CertFile, "--key-file", tlsCfg.KeyFile,
			"--trusted-ca-file", tlsCfg.CAFile, "--client-cert-auth")
	}
	return s, s.start()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (s *Server) start() error {
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	s.cmd = exec.Command(s.args[0], s.args[1:]...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); logf.Close(); close(s.exited) }()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			out, _ := os.ReadFile(s.log)
			return fmt.Errorf("etcd exited: %s", out)
		default:
		}
		if s.healthy() {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.Stop()
	out, _ := os.ReadFile(s.log)
	return fmt.Errorf("etcd did not become healthy in 15s: %s", out)
}

func (s *Server) healthy() bool {
	if s.tls {
		// A TLS handshake needs a client certificate; a listening socket
		// and a short wait will do.
		c, err := net.DialTimeout("tcp", s.Endpoint[len("https://"):], 200*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		time.Sleep(300 * time.Millisecond)
		return true
	}
	c := http.Client{Timeout: 500 * time.Millisecond}
	resp, err := c.Get(s.Endpoint + "/health")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// Stop ends etcd (SIGTERM, then SIGKILL after 5s) and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// Restart starts etcd again on the same ports and data.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Stop()
	// "new" is ignored when the data directory exists.
	if err := s.start(); err != nil {
		tb.Fatal(err)
	}
}

// Client is a plain-HTTP client of the server, closed in Cleanup.
func (s *Server) Client(tb testing.TB) *clientv3.Client {
	tb.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cli.Close() })
	return cli
}

// Put writes key=value with a 5s timeout.
func Put(tb testing.TB, cli *clientv3.Client, key, value string) int64 {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := cli.Put(ctx, key, value)
	if err != nil {
		tb.Fatalf("put %s: %v", key, err)
	}
	return r.Header.Revision
}

// CalicoInit is what calicoctl v3.32.1's first write to an etcdv3
// datastore creates under /calico, key -> value: ClusterInformation
// "default" with datastoreReady true, and the tiers default, kube-admin and
// kube-baseline (each with "status": {}). A gateway never sees a Calico
// datastore without them; tests and benchmarks that write resources without
// calicoctl start with them (InitCalico).
func CalicoInit() map[string]string {
	const rp = "/calico/resources/v3/projectcalico.org/"
	meta := `"uid":"956f6915-8cf3-44bc-8caf-58f7f78128c3","creationTimestamp":"2026-01-01T00:00:00Z"`
	kv := map[string]string{
		rp + "clusterinformations/default": `{"kind":"ClusterInformation","apiVersion":"projectcalico.org/v3","metadata":{"name":"default",` + meta +
			`},"spec":{"clusterGUID":"7e9c61710b8c4d9388dbf3c08aa297ab","datastoreReady":true}}`,
	}
	for _, t := range []struct {
		name, order, action string
	}{{"default", "1000000", "Deny"}, {"kube-admin", "1000", "Pass"}, {"kube-baseline", "10000000", "Pass"}} {
		kv[rp+"tiers/"+t.name] = `{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":"` + t.name + `",` + meta +
			`},"spec":{"order":` + t.order + `,"defaultAction":"` + t.action + `"},"status":{}}`
	}
	return kv
}

// InitCalico writes CalicoInit's keys.
func InitCalico(tb testing.TB, cli *clientv3.Client) {
	tb.Helper()
	for k, v := range CalicoInit() {
		Put(tb, cli, k, v)
	}
}
