package datastore

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/nfgate/nfgate/policy/config"
)

// NewClient connects to the etcd cluster of ds. It does not wait for a
// connection: with etcd down it succeeds and requests fail until etcd is
// back.
func NewClient(ds *config.Datastore) (*clientv3.Client, error) {
	if ds == nil || len(ds.Endpoints) == 0 {
		return nil, errors.New("datastore: no etcd endpoints configured")
	}
	tlsCfg, err := tlsConfig(ds)
	if err != nil {
		return nil, err
	}
	return clientv3.New(clientv3.Config{
		Endpoints:            ds.Endpoints,
		TLS:                  tlsCfg,
		DialTimeout:          3 * time.Second,
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		Logger:               zap.NewNop(),
	})
}

// tlsConfig is nil for plain-HTTP endpoints without certificates.
func tlsConfig(ds *config.Datastore) (*tls.Config, error) {
	secure := ds.CAFile != "" || ds.CertFile != ""
	for _, e := range ds.Endpoints {
		secure = secure || strings.HasPrefix(e, "https://")
	}
	if !secure {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if ds.CAFile != "" {
		pem, err := os.ReadFile(ds.CAFile)
		if err != nil {
			return nil, fmt.Errorf("datastore caFile: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("datastore caFile %s: no PEM certificates", ds.CAFile)
		}
	}
	if ds.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(ds.CertFile, ds.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("datastore certFile/keyFile: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
