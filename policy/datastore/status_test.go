package datastore

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/datastore/etcdtest"
)

func TestStatusPublishedListedAndExpired(t *testing.T) {
	srv := etcdtest.Start(t, nil)
	cli := srv.Client(t)
	rev := put(t, cli, pfx+"globalnetworkpolicies/allow-ssh", gnpJSON("allow-ssh", 1, 22))

	ctx1, stop1 := context.WithCancel(context.Background())
	defer stop1()
	ctx2, stop2 := context.WithCancel(context.Background())
	defer stop2()
	w1 := NewStatusWriter(cli, "/calico", "gw1", 5*time.Second, quietLog())
	w2 := NewStatusWriter(cli, "/calico", "gw2", 5*time.Second, quietLog())
	go w1.Run(ctx1)
	go w2.Run(ctx2)
	now := time.Now().UTC().Truncate(time.Second)
	w1.Set(Status{Generation: 3, Hash: "ab12", Revision: rev, Applied: now})
	w2.Set(Status{Generation: 2, Hash: "cd34", Revision: rev - 1, Applied: now, LastError: "rejected", ErrorTime: now})

	var fs *FleetStatus
	waitFor(t, 5*time.Second, "two gateways listed", func() bool {
		var err error
		fs, err = ListStatus(context.Background(), cli, "/calico")
		return err == nil && len(fs.Gateways) == 2 && fs.Gateways[1].LastError != ""
	})
	g1, g2 := fs.Gateways[0], fs.Gateways[1]
	if g1.Node != "gw1" || g1.Generation != 3 || g1.Hash != "ab12" || g1.Revision != rev || !g1.Applied.Equal(now) || g1.Updated.IsZero() {
		t.Errorf("gw1 status %+v", g1)
	}
	if g2.Node != "gw2" || g2.LastError != "rejected" {
		t.Errorf("gw2 status %+v", g2)
	}
	if fs.Revision != rev {
		t.Errorf("fleet revision %d, want %d (the newest resource change)", fs.Revision, rev)
	}

	// A clean stop removes the key at once (lease revoked).
	stop2()
	waitFor(t, 5*time.Second, "gw2 gone after it stopped", func() bool {
		fs, _ = ListStatus(context.Background(), cli, "/calico")
		return fs != nil && len(fs.Gateways) == 1
	})
	// A dead gateway (no revoke, no keep-alive) expires with its lease.
	lease, err := cli.Grant(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(context.Background(), StatusKey("/calico", "gw3"), `{"node":"gw3"}`, clientWithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "gw3 expired", func() bool {
		fs, _ = ListStatus(context.Background(), cli, "/calico")
		return fs != nil && len(fs.Gateways) == 1 && fs.Gateways[0].Node == "gw1"
	})
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestWatchTLS: client certificate, key and CA from [datastore].
func TestWatchTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, dir, "ca", nil, nil)
	newCert(t, dir, "server", ca, caKey)
	newCert(t, dir, "client", ca, caKey)
	f := func(n string) string { return filepath.Join(dir, n) }
	srv := etcdtest.Start(t, &etcdtest.TLS{CAFile: f("ca.pem"), CertFile: f("server.pem"), KeyFile: f("server-key.pem")})

	ds := config.Datastore{Endpoints: []string{srv.Endpoint}, Prefix: "/calico", CAFile: f("ca.pem"), CertFile: f("client.pem"), KeyFile: f("client-key.pem")}
	cli, err := NewClient(&ds)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	etcdtest.InitCalico(t, cli)
	put(t, cli, pfx+"globalnetworkpolicies/allow-ssh", gnpJSON("allow-ssh", 4, 22))
	w, err := New(Options{Datastore: ds, MainPath: fleetMain(t, "gw1"), Logger: testLog(t), ListTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	next(t, w.Watch(ctx), 10*time.Second, "a snapshot over TLS", func(s *Snapshot) bool { return policyOrder(s, "allow-ssh") == 4 })

	// Without a client certificate etcd refuses the gateway.
	noCert := ds
	noCert.CertFile, noCert.KeyFile = "", ""
	c2, err := NewClient(&noCert)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	gctx, gcancel := context.WithTimeout(context.Background(), time.Second)
	defer gcancel()
	if _, err := c2.Get(gctx, "x"); err == nil {
		t.Error("etcd accepted a client without a certificate")
	}
}

// newCert writes name.pem and name-key.pem, signed by parent (self-signed
// when nil), valid for 127.0.0.1.
func newCert(t *testing.T, dir, name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	signer, signKey := tmpl, key
	if parent == nil {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	} else {
		signer, signKey = parent, parentKey
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signer, &key.PublicKey, signKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, name+".pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(filepath.Join(dir, name+"-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}
