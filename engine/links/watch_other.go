//go:build !linux

package links

import (
	"context"
	"errors"
)

var errUnsupported = errors.New("links: watching interfaces needs Linux rtnetlink")

// Watch is only implemented on Linux.
func Watch(ctx context.Context) (*Table, error) { return nil, errUnsupported }

// WatchNetNS is only implemented on Linux.
func WatchNetNS(ctx context.Context, nsfd int) (*Table, error) { return nil, errUnsupported }
