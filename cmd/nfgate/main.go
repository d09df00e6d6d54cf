// Command nfgate enforces Calico host-endpoint policy on a Linux router or
// NAT gateway over NFQUEUE. Subcommands live one per file.
package main

import (
	"fmt"
	"os"
	"sort"
)

// subcommand runs with the arguments after its name and returns the exit code.
type subcommand struct {
	summary string
	run     func(args []string) int
}

// commands is filled by each subcommand file's init.
var commands = map[string]subcommand{}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: nfgate <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", n, commands[n].summary)
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	c, ok := commands[os.Args[1]]
	if !ok {
		if os.Args[1] != "-h" && os.Args[1] != "--help" && os.Args[1] != "help" {
			fmt.Fprintf(os.Stderr, "nfgate: unknown command %q\n", os.Args[1])
		}
		usage()
		os.Exit(2)
	}
	os.Exit(c.run(os.Args[2:]))
}
