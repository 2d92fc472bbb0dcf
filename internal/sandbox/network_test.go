package sandbox

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestJoinNetwork(t *testing.T) {
	c := Config(Spec{Argv: []string{"/bin/true"}}, "/root", "cipack")
	if slices.ContainsFunc(c.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace }) {
		t.Fatal("a container without a Network gets a network namespace: the host's network is the caller's choice")
	}
	joinNetwork(c, "/w/netns", "/w/resolv.conf")
	i := slices.IndexFunc(c.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.NetworkNamespace })
	if i < 0 || c.Linux.Namespaces[i].Path != "/w/netns" {
		t.Errorf("namespaces %+v: want the network namespace at /w/netns", c.Linux.Namespaces)
	}
	m := c.Mounts[len(c.Mounts)-1]
	if m.Destination != "/etc/resolv.conf" || m.Source != "/w/resolv.conf" || !slices.Contains(m.Options, "ro") {
		t.Errorf("last mount %+v: want the helper's resolv.conf, read-only", m)
	}
}

func TestResolvConfForNamesOnlyTheForwarders(t *testing.T) {
	host := "# systemd-resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n"
	want := "options edns0 trust-ad\nsearch corp.example\nnameserver " + DNSForwarder + "\nnameserver " + DNSForwarder6 + "\n"
	if got := resolvConfFor([]byte(host), nameservers("/usr/bin/pasta")); got != want {
		t.Errorf("pasta: got %q, want %q", got, want)
	}
	if got := resolvConfFor(nil, nameservers("/usr/bin/slirp4netns")); got != "nameserver "+DNSForwarder+"\n" {
		t.Errorf("slirp4netns, no host file: %q", got)
	}
}

// pasta forwards DNS for both families (an IPv6-only runner has no IPv4
// in the namespace), to the addresses resolv.conf names, and forwards no
// port of the namespace's loopback to the host's.
func TestPastaArgsForwardDNSForEachFamily(t *testing.T) {
	args := strings.Join(pastaArgs("/w/netns", "/w/pasta.pid"), " ")
	for _, want := range []string{"--dns-forward " + DNSForwarder + " ", "--dns-forward " + DNSForwarder6 + " ",
		"-t none -u none -T none -U none", "--no-map-gw"} {
		if !strings.Contains(args, want) {
			t.Errorf("pasta %s: lacks %q", args, want)
		}
	}
	for _, ns := range nameservers("pasta") {
		if !strings.Contains(args, "--dns-forward "+ns) {
			t.Errorf("resolv.conf names %s, which pasta does not forward", ns)
		}
	}
}

func TestRouteRequestIsAnUnreachableRoute(t *testing.T) {
	b := routeRequest(unix.AF_INET, 16, []byte{169, 254, 0, 0})
	ne := binary.NativeEndian
	if int(ne.Uint32(b)) != len(b) || len(b)%4 != 0 || ne.Uint16(b[4:]) != unix.RTM_NEWROUTE {
		t.Fatalf("header: %x", b[:16])
	}
	rt := b[unix.SizeofNlMsghdr:]
	if rt[0] != unix.AF_INET || rt[1] != 16 || rt[4] != unix.RT_TABLE_MAIN || rt[7] != unix.RTN_UNREACHABLE {
		t.Errorf("rtmsg: %x", rt[:unix.SizeofRtMsg])
	}
	attr := rt[unix.SizeofRtMsg:]
	if ne.Uint16(attr[2:]) != unix.RTA_DST || string(attr[4:8]) != string([]byte{169, 254, 0, 0}) {
		t.Errorf("RTA_DST: %x", attr)
	}
}

func TestDefaultRoutesIn(t *testing.T) {
	head := "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
	subnetOnly := head + "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	v4 := subnetOnly + "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	zero := "00000000000000000000000000000000"
	v6 := zero + " 00 " + zero + " 00 fd000000000000000000000000000001 00000400 00000002 00000000 00000003     eth0\n"
	v6lo := zero + " 00 " + zero + " 00 " + zero + " ffffffff 00000001 00000000 00200200       lo\n"
	for _, c := range []struct {
		name         string
		v4, v6       string
		want4, want6 bool
	}{
		{"ipv4 default", v4, "", true, false},
		{"subnet only", subnetOnly, "", false, false},
		{"ipv6 only", subnetOnly, v6, false, true},
		{"both", v4, v6, true, true},
		{"ipv6 reject on lo", subnetOnly, v6lo, false, false},
		{"nothing", "", "", false, false},
	} {
		if g4, g6 := defaultRoutesIn([]byte(c.v4), []byte(c.v6)); g4 != c.want4 || g6 != c.want6 {
			t.Errorf("%s: v4 %v v6 %v, want %v %v", c.name, g4, g6, c.want4, c.want6)
		}
	}
}
