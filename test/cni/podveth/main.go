// Command podveth is a CNI plugin for the test fixtures: it gives a pod's
// network namespace an eth0 with the address its IPAM plugin hands out, as a
// veth pair whose both ends stay in that namespace. The host gets no
// interface, route or sysctl (the kernel here has no dummy device, and
// bridge or ptp would set the host's ip_forward); pods are reached through
// exec, never from the host.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: add, Del: del, Check: check}, version.All, "podveth: a pod's eth0, both veth ends inside its network namespace")
}

func add(args *skel.CmdArgs) error {
	conf := types.NetConf{}
	if err := json.Unmarshal(args.StdinData, &conf); err != nil {
		return fmt.Errorf("the network configuration: %w", err)
	}
	r, err := ipam.ExecAdd(conf.IPAM.Type, args.StdinData)
	if err != nil {
		return fmt.Errorf("ipam %s: %w", conf.IPAM.Type, err)
	}
	result, err := current.NewResultFromResult(r)
	if err != nil {
		return err
	}
	if len(result.IPs) == 0 {
		return errors.New("ipam gave no address")
	}
	err = ns.WithNetNSPath(args.Netns, func(ns.NetNS) error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: args.IfName}, PeerName: args.IfName + "p"}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("adding %s: %w", args.IfName, err)
		}
		link, err := netlink.LinkByName(args.IfName)
		if err != nil {
			return err
		}
		peer, err := netlink.LinkByName(veth.PeerName)
		if err != nil {
			return err
		}
		for _, ip := range result.IPs {
			if err := netlink.AddrAdd(link, &netlink.Addr{IPNet: &net.IPNet{IP: ip.Address.IP, Mask: ip.Address.Mask}}); err != nil {
				return err
			}
		}
		if err := netlink.LinkSetUp(peer); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(link); err != nil {
			return err
		}
		result.Interfaces = []*current.Interface{{Name: args.IfName, Mac: link.Attrs().HardwareAddr.String(), Sandbox: args.Netns}}
		for _, ip := range result.IPs {
			ip.Interface = current.Int(0)
		}
		return nil
	})
	if err != nil {
		_ = ipam.ExecDel(conf.IPAM.Type, args.StdinData)
		return err
	}
	return types.PrintResult(result, conf.CNIVersion)
}

// del frees the address; the interfaces go with the namespace.
func del(args *skel.CmdArgs) error {
	conf := types.NetConf{}
	if err := json.Unmarshal(args.StdinData, &conf); err != nil {
		return fmt.Errorf("the network configuration: %w", err)
	}
	return ipam.ExecDel(conf.IPAM.Type, args.StdinData)
}

func check(*skel.CmdArgs) error { return nil }
