//go:build linux

// Command nfgate-lab is `make demo`: it builds a network namespace lab
// (an outside network, an application network, a maintenance network and
// a NodePort-style DNAT service on a gateway), runs `nfgate run` on the
// gateway with examples/lab/nfgate.toml, sends real traffic, prints every
// decision from nfgate's verdict trace and tears the lab down. It exits
// non-zero when an attempt does not go as the policy says. Needs root.
package main

import (
	"flag"
	"os"

	"github.com/nfgate/nfgate/test/lab"
)

func main() {
	o := lab.Options{}
	flag.StringVar(&o.Nfgate, "nfgate", "bin/nfgate", "the nfgate binary to run on the gateway")
	flag.StringVar(&o.Config, "config", "examples/lab/nfgate.toml", "the lab's policy")
	flag.BoolVar(&o.Verbose, "v", false, "also print nfgate's own log")
	flag.StringVar(&o.Capture, "capture", "", "write the connection attempts arriving on the gateway's app0 to this pcap file (for nfgate replay)")
	flag.Parse()
	os.Exit(lab.Main(o))
}
