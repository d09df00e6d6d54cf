module github.com/nfgate/nfgate

go 1.26.8

require (
	github.com/BurntSushi/toml v1.6.0
	github.com/florianl/go-nfqueue/v2 v2.0.4
	github.com/google/go-cmp v0.7.0
	github.com/google/gopacket v1.1.19
	github.com/mdlayher/netlink v1.11.2
	github.com/ti-mo/conntrack v0.6.0
	golang.org/x/sys v0.43.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/mdlayher/socket v0.6.0 // indirect
	github.com/pkg/errors v0.9.1 // indirect
	github.com/ti-mo/netfilter v0.5.3 // indirect
	golang.org/x/net v0.53.0 // indirect
	golang.org/x/sync v0.20.0 // indirect
)
