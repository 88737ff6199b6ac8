//go:build tools

// Package cni pins the CNI plugins the test fixtures build.
package cni

import (
	_ "github.com/containernetworking/plugins/plugins/ipam/host-local"
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
)
