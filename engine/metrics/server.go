package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/nfgate/nfgate/policy/config"
)

// Listen opens the metrics listener on addr (host:port). Unless
// allowRemote, the host must be loopback, and so must the address actually
// bound (a "localhost" that resolves elsewhere is refused).
func Listen(addr string, allowRemote bool) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %q: %v", addr, err)
	}
	if !allowRemote && !config.IsLoopbackHost(host) {
		return nil, fmt.Errorf("metrics address %q is not loopback (set engine.metricsAllowRemote = true to expose metrics)", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); !allowRemote && (!ok || !a.IP.IsLoopback()) {
		ln.Close()
		return nil, fmt.Errorf("metrics address %q bound %v, which is not loopback", addr, ln.Addr())
	}
	return ln, nil
}

// Handler serves reg at /metrics (GET and HEAD) and a short pointer at /.
func Handler(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "nfgate metrics: /metrics")
	})
	return mux
}

// Serve answers metrics requests on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 8 << 10}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			srv.Shutdown(sctx)
			cancel()
		case <-done:
		}
	}()
	err := srv.Serve(ln)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
