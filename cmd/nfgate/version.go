package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at build time (-ldflags "-X main.version=1.2.3"); else
// the module version, else "devel".
var version = ""

func init() {
	if version == "" {
		version = "devel"
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
	}
	commands["version"] = subcommand{"print nfgate's version", func([]string) int {
		fmt.Printf("nfgate %s (%s)\n", version, runtime.Version())
		return 0
	}}
}
