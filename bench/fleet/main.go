// Command fleet measures how a fleet of gateways converges on a policy
// change through one etcd: N watchers in one process, each with its own
// etcd connection and local configuration (its own nodeName, so each
// governs only its own HostEndpoint), against Debian's etcd-server on
// loopback. It prints a markdown table.
//
//	go run ./bench/fleet -n 10,50,200 -changes 20
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/datastore"
	"github.com/nfgate/nfgate/policy/datastore/etcdtest"
)

const rp = "/calico/resources/v3/projectcalico.org/"

func main() {
	counts := flag.String("n", "10,50,200", "comma-separated watcher counts")
	changes := flag.Int("changes", 20, "policy changes per count")
	policies := flag.Int("policies", 50, "GlobalNetworkPolicies in the datastore")
	quiet := flag.Duration("quiet", 100*time.Millisecond, "watchers' coalescing quiet period")
	flag.Parse()

	dir, err := os.MkdirTemp("", "nfgate-bench-fleet")
	check(err)
	defer os.RemoveAll(dir)
	srv, err := etcdtest.Run(dir, nil)
	check(err)
	defer srv.Stop()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
	check(err)
	defer cli.Close()

	var ns []int
	for _, s := range strings.Split(*counts, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		check(err)
		ns = append(ns, n)
	}
	maxN := slices.Max(ns)
	ctx := context.Background()
	put := func(k, v string) {
		_, err := cli.Put(ctx, k, v)
		check(err)
	}
	for k, v := range etcdtest.CalicoInit() { // what calicoctl's first write creates
		put(k, v)
	}
	for i := 0; i < *policies; i++ {
		put(rp+fmt.Sprintf("globalnetworkpolicies/p%03d", i), gnp(fmt.Sprintf("p%03d", i), i, 1000+i))
	}
	for i := 0; i < maxN; i++ {
		put(rp+fmt.Sprintf("hostendpoints/gw%d-eth0", i), fmt.Sprintf(`{"kind":"HostEndpoint","apiVersion":"projectcalico.org/v3","metadata":{"name":"gw%d-eth0","labels":{"role":"gateway"}},"spec":{"node":"gw%d","interfaceName":"eth0","expectedIPs":["198.18.%d.%d"]}}`, i, i, i/250, i%250+1))
	}
	put(rp+"globalnetworksets/partners", `{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":"partners"},"spec":{"nets":["198.19.0.0/16"]}}`)

	fmt.Printf("%d CPUs, etcd %s, %d policies + %d host endpoints, %d changes per row, quiet period %v\n\n",
		runtime.NumCPU(), etcdVersion(srv.Endpoint), *policies, maxN, *changes, *quiet)
	t0 := time.Now()
	main0 := filepath.Join(dir, "probe.toml")
	check(os.WriteFile(main0, []byte("[gateway]\nnodeName = \"gw0\"\n"), 0o600))
	w0, err := datastore.New(datastore.Options{Datastore: config.Datastore{Prefix: "/calico"}, Client: cli, MainPath: main0, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	check(err)
	pctx, pcancel := context.WithCancel(ctx)
	<-w0.Watch(pctx)
	pcancel()
	fmt.Printf("one gateway's list + validate + load of this set: %v\n\n", time.Since(t0).Round(time.Millisecond))
	fmt.Println("| gateways | etcd delivery p50 | p99 | first snapshot, all (s) | change→snapshot p50 | p99 | all converged p50 | max | watches opened (1 per kind + 1 bare, per gateway) | etcd RSS (MiB) | etcd CPU per change (ms) | etcd sent per change (KiB) |")
	fmt.Println("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	round := 0
	for _, n := range ns {
		round = run(ctx, cli, srv.Endpoint, dir, n, *changes, *quiet, round)
	}
}

func gnp(name string, order, port int) string {
	return fmt.Sprintf(`{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":%q},"spec":{"order":%d,"selector":"role == 'gateway'","types":["Ingress"],"ingress":[{"action":"Allow","protocol":"TCP","source":{"nets":["198.19.0.0/16"]},"destination":{"ports":[%d]}}]}}`, name, order, port)
}

type watcher struct {
	w   *datastore.Watcher
	cli *clientv3.Client
	got chan time.Time // when the watcher saw the awaited order
	raw chan time.Time // when its etcd watch delivered the change
}

func run(ctx context.Context, cli *clientv3.Client, endpoint, dir string, n, changes int, quiet time.Duration, round int) int {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	want := -1.0
	ws := make([]*watcher, n)
	start := time.Now()
	var ready sync.WaitGroup
	for i := range ws {
		main := filepath.Join(dir, fmt.Sprintf("gw%d.toml", i))
		check(os.WriteFile(main, []byte(fmt.Sprintf("[gateway]\nnodeName = \"gw%d\"\n", i)), 0o600))
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()})
		check(err)
		w, err := datastore.New(datastore.Options{Datastore: config.Datastore{Prefix: "/calico"}, Client: c, MainPath: main, Quiet: quiet, Logger: log})
		check(err)
		x := &watcher{w: w, cli: c, got: make(chan time.Time, 1), raw: make(chan time.Time, 1)}
		// The same change seen by a bare watch on the gateway's connection:
		// etcd's fan-out without nfgate's coalescing and loading.
		rw := c.Watch(wctx, rp+"globalnetworkpolicies/p000")
		go func() {
			for r := range rw {
				if len(r.Events) > 0 {
					select {
					case x.raw <- time.Now():
					default:
					}
				}
			}
		}()
		ws[i] = x
		ready.Add(1)
		go func() {
			first := true
			for s := range w.Watch(wctx) {
				if s.Err != nil {
					panic(s.Err)
				}
				if len(s.Loaded.Policy.HostEndpoints) != 1 {
					panic("a watcher governs other nodes' endpoints")
				}
				if first {
					first = false
					ready.Done()
				}
				mu.Lock()
				w := want
				mu.Unlock()
				if order(s) == w {
					select {
					case x.got <- time.Now():
					default:
					}
				}
			}
		}()
	}
	ready.Wait()
	firstAll := time.Since(start)
	time.Sleep(500 * time.Millisecond)
	m0 := metrics(endpoint)

	for _, x := range ws { // drain deliveries of the setup
		select {
		case <-x.raw:
		default:
		}
	}
	var per, conv, raw []time.Duration
	for c := 0; c < changes; c++ {
		round++
		mu.Lock()
		want = float64(10000 + round)
		mu.Unlock()
		t0 := time.Now()
		_, err := cli.Put(ctx, rp+"globalnetworkpolicies/p000", gnp("p000", 10000+round, 22))
		check(err)
		var last time.Duration
		for _, x := range ws {
			select {
			case t := <-x.got:
				d := t.Sub(t0)
				per = append(per, d)
				last = max(last, d)
			case <-time.After(30 * time.Second):
				panic("a watcher did not converge in 30s")
			}
		}
		conv = append(conv, last)
		for _, x := range ws {
			select {
			case t := <-x.raw:
				raw = append(raw, t.Sub(t0))
			case <-time.After(30 * time.Second):
				panic("no etcd delivery in 30s")
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	m1 := metrics(endpoint)
	slices.Sort(per)
	slices.Sort(raw)
	slices.Sort(conv)
	pct := func(l []time.Duration, p int) string {
		return l[min(len(l)-1, len(l)*p/100)].Round(time.Millisecond).String()
	}
	fmt.Printf("| %d | %s | %s | %.2f | %s | %s | %s | %s | %.0f | %.0f | %.1f | %.1f |\n", n, pct(raw, 50), pct(raw, 99), firstAll.Seconds(),
		pct(per, 50), pct(per, 99), pct(conv, 50), conv[len(conv)-1].Round(time.Millisecond),
		float64(7*n), m1["process_resident_memory_bytes"]/(1<<20),
		1000*(m1["process_cpu_seconds_total"]-m0["process_cpu_seconds_total"])/float64(changes),
		(m1["etcd_network_client_grpc_sent_bytes_total"]-m0["etcd_network_client_grpc_sent_bytes_total"])/1024/float64(changes))
	cancel()
	for _, x := range ws {
		x.w.Close()
		x.cli.Close()
	}
	return round
}

func order(s *datastore.Snapshot) float64 {
	for _, p := range s.Loaded.Policy.Policies {
		if p.Name == "p000" && p.Order != nil {
			return *p.Order
		}
	}
	return -1
}

// metrics reads etcd's Prometheus counters (unlabelled ones only).
func metrics(endpoint string) map[string]float64 {
	out := map[string]float64{}
	resp, err := http.Get(endpoint + "/metrics")
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasPrefix(f[0], "#") {
			if v, err := strconv.ParseFloat(f[1], 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

func etcdVersion(endpoint string) string {
	resp, err := http.Get(endpoint + "/version")
	if err != nil {
		return "?"
	}
	defer resp.Body.Close()
	var v struct {
		Server string `json:"etcdserver"`
	}
	json.NewDecoder(resp.Body).Decode(&v)
	return v.Server
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/fleet:", err)
		os.Exit(1)
	}
}
