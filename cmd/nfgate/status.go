package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nfgate/nfgate/policy/config"
	"github.com/nfgate/nfgate/policy/datastore"
)

func init() {
	commands["status"] = subcommand{
		summary: "show the fleet's gateways and whether they applied the datastore's newest policy",
		run:     func(args []string) int { return runStatus(args, os.Stdout, os.Stderr) },
	}
}

// statusNow is the clock for ages in the table (tests pin it).
var statusNow = time.Now

func runStatus(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "", "read the [datastore] table of this configuration file")
	endpoints := fs.String("datastore-endpoints", "", "comma-separated etcd URLs (instead of --config)")
	caFile := fs.String("ca-file", "", "CA of the etcd servers")
	certFile := fs.String("cert-file", "", "client certificate")
	keyFile := fs.String("key-file", "", "client key")
	prefix := fs.String("prefix", config.DefaultDatastorePrefix, "root of Calico's keys")
	asJSON := fs.Bool("json", false, "print JSON")
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: nfgate status (--config FILE | --datastore-endpoints URL[,URL]) [--ca-file F --cert-file F --key-file F] [--prefix P] [--json]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 || (*cfgPath == "") == (*endpoints == "") {
		fs.Usage()
		return 2
	}
	var ds config.Datastore
	if *cfgPath != "" {
		l, err := config.Load(*cfgPath)
		if l == nil || l.Datastore == nil {
			if err != nil {
				fmt.Fprintf(stderr, "nfgate status: %v\n", err)
			}
			fmt.Fprintf(stderr, "nfgate status: %s has no [datastore] table\n", *cfgPath)
			return 1
		}
		ds = *l.Datastore
	} else {
		ds = config.Datastore{Prefix: *prefix, CAFile: *caFile, CertFile: *certFile, KeyFile: *keyFile}
		for _, e := range strings.Split(*endpoints, ",") {
			if e = strings.TrimSpace(e); e != "" {
				ds.Endpoints = append(ds.Endpoints, e)
			}
		}
	}
	cli, err := datastore.NewClient(&ds)
	if err != nil {
		fmt.Fprintf(stderr, "nfgate status: %v\n", err)
		return 1
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	fleet, err := datastore.ListStatus(ctx, cli, ds.Prefix)
	if err != nil {
		fmt.Fprintf(stderr, "nfgate status: reading %s: %v\n", strings.Join(ds.Endpoints, ","), err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(fleet)
		return 0
	}
	printFleet(stdout, fleet, statusNow())
	return 0
}

func printFleet(w io.Writer, f *datastore.FleetStatus, now time.Time) {
	inSync := 0
	for _, g := range f.Gateways {
		if g.Revision >= f.Revision {
			inSync++
		}
	}
	fmt.Fprintf(w, "datastore revision %d: %d gateway(s), %d in sync\n", f.Revision, len(f.Gateways), inSync)
	if f.NotReady != "" {
		fmt.Fprintf(w, "NOT READY, no gateway applies changes: %s\n", f.NotReady)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tGEN\tHASH\tREVISION\tIN SYNC\tAPPLIED\tSOURCE\tLAST ERROR")
	for _, g := range f.Gateways {
		sync, src, hash := "yes", "etcd", g.Hash
		if g.Revision < f.Revision {
			sync = "no"
		}
		if g.FromCache {
			src = "cache"
		}
		if len(hash) > 12 {
			hash = hash[:12]
		}
		lastErr := "-"
		if g.LastError != "" {
			lastErr = strings.SplitN(g.LastError, "\n", 2)[0]
			if !g.ErrorTime.IsZero() {
				lastErr = ago(now, g.ErrorTime) + ": " + lastErr
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\t%s\n", g.Node, g.Generation, dash(hash), g.Revision, sync, ago(now, g.Applied), src, lastErr)
	}
	tw.Flush()
	for _, k := range f.Bad {
		fmt.Fprintf(w, "unreadable status key: %s\n", k)
	}
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String() + " ago"
}
