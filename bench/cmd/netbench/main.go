//go:build linux

// Command netbench measures nfgate against kernel forwarding, linear
// iptables rules and a bare NFQUEUE reader in a client — gateway — server
// namespace topology and prints markdown tables (`make bench-net`).
// It needs root. See docs/performance.md.
package main

import (
	"os"

	"github.com/nfgate/nfgate/bench/netbench"
)

func main() {
	netbench.MaybeChild()
	os.Exit(netbench.Main(os.Args[1:], os.Stdout, os.Stderr))
}
