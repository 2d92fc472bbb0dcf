package sandbox

import (
	"encoding/binary"
	"fmt"
	"net"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// FilteredNets are refused by a netfilter rule in build code's
// namespace, whatever interface a packet leaves by. An unreachable route
// alone is not enough: SO_BINDTODEVICE or an IP_PKTINFO ifindex (no
// capability needed) makes the kernel send out the chosen interface past
// a failed route lookup, pasta answers ARP and NDP for every address,
// and a link-local or multicast address with a scope id ignores the
// routes entirely. The OUTPUT hook sees every packet after routing, so a
// rule there holds for all of them. The runner's own addresses are added
// per run (hostAddrs). IPv4 multicast and the limited broadcast go too:
// nothing build code needs is there, and a runner's services may listen.
var FilteredNets = []string{
	"169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
	"fd00:ec2::254/128", "fe80::/10", "ff00::/8",
}

// ndpTypes are the ICMPv6 messages the namespace's own stack sends to
// link-local and multicast addresses for IPv6 to work at all: router and
// neighbour solicitation and advertisement (the default route's gateway
// is often link-local), and MLDv2 reports. Only the kernel sends them:
// build code has no raw sockets, and an unprivileged ICMP socket sends
// echo requests only.
var ndpTypes = []byte{133, 135, 136, 143}

// filterTable is the nftables table cipack makes in build code's
// namespace. Build code cannot change it: it has no CAP_NET_ADMIN, and
// the namespace belongs to the helper's (root's) user namespace.
const filterTable = "cipack"

// addFilter programs the OUTPUT rules in the calling thread's network
// namespace: loopback passes (the namespace's own addresses, pasta's
// copy of the host's included, are local), the stack's NDP passes, and
// every net in nets is rejected with "host unreachable", so a connect()
// fails at once with EHOSTUNREACH, as the routes make it. One batch,
// applied atomically: all rules or none.
func addFilter(nets []string) error {
	c, err := nftables.New() // a socket in this thread's namespace
	if err != nil {
		return fmt.Errorf("netlink to nftables: %w", err)
	}
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: filterTable})
	accept := nftables.ChainPolicyAccept
	chain := c.AddChain(&nftables.Chain{Name: "output", Table: table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &accept})
	rules, err := filterRules(nets)
	if err != nil {
		return err
	}
	for _, r := range rules {
		c.AddRule(&nftables.Rule{Table: table, Chain: chain, Exprs: r})
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables rules in the build's network namespace: %w", err)
	}
	return nil
}

// filterRules are the chain's rules, in order: first match wins.
func filterRules(nets []string) ([][]expr.Any, error) {
	rules := [][]expr.Any{loopbackAccept()}
	for _, t := range ndpTypes {
		rules = append(rules, ndpAccept(t))
	}
	for _, cidr := range nets {
		r, err := rejectNet(cidr)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// loopbackAccept is "meta oif lo accept": lo is interface 1 in every
// network namespace.
func loopbackAccept() []expr.Any {
	lo := make([]byte, 4)
	binary.NativeEndian.PutUint32(lo, 1)
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyOIF, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: lo},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// ndpAccept is "icmpv6 type t accept".
func ndpAccept(t byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.NFPROTO_IPV6}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_ICMPV6}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{t}},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// rejectNet is "ip[6] daddr cidr reject with icmpx host-unreachable".
func rejectNet(cidr string) ([]expr.Any, error) {
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return nil, fmt.Errorf("filter %q: %w", cidr, err)
	}
	proto, offset, addr, mask := byte(unix.NFPROTO_IPV6), uint32(24), []byte(ipnet.IP.To16()), []byte(ipnet.Mask)
	if v4 := ipnet.IP.To4(); v4 != nil {
		proto, offset, addr = unix.NFPROTO_IPV4, 16, v4
		mask = mask[len(mask)-4:]
	}
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{proto}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: uint32(len(addr))},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: uint32(len(addr)), Mask: mask, Xor: make([]byte, len(addr))},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr},
		&expr.Reject{Type: unix.NFT_REJECT_ICMPX_UNREACH, Code: unix.NFT_REJECT_ICMPX_HOST_UNREACH},
	}, nil
}
