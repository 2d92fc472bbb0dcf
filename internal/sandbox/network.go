package sandbox

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Network modes of build code. Host is the host's own network (no
// Network in the Spec); Isolated is a network namespace of its own whose
// traffic leaves through a user-mode stack (pasta), with no way to the
// host's loopback, its abstract unix sockets (they are per network
// namespace) or link-local addresses; None is a namespace with only a
// loopback.
const (
	NetHost     = "host"
	NetIsolated = "isolated"
	NetNone     = "none"
)

// Network is the network namespace a container gets.
type Network struct {
	Mode string `json:"mode"`
	// Stack is pasta's path (NetIsolated only).
	Stack string `json:"stack,omitempty"`
}

// The user-mode network stacks cipack runs, and StackPackage, the Debian
// and Ubuntu package of the first. pasta is preferred: it copies the
// host's addresses and routes (so the host's own address is the
// namespace's, not a way back to the host), forwards DNS to the host's
// resolver even when that is 127.0.0.53, and sandboxes itself (seccomp,
// its own namespaces, two capabilities). slirp4netns is the fallback
// (GitHub's ubuntu-22.04 images have it, with podman; their archive has
// no passt): a NAT at 10.0.2.0/24 with its own DNS forwarder at
// 10.0.2.3, run with --disable-host-loopback, its sandbox and seccomp.
const (
	StackPasta   = "pasta"
	StackSlirp   = "slirp4netns"
	StackPackage = "passt"
)

// DNSForwarder is the nameserver build code's resolv.conf names in its
// own network: pasta answers it with the host's first resolver, reached
// from the host (systemd-resolved's 127.0.0.53 included, which build
// code itself cannot reach). It is slirp4netns's well-known address; a
// host on a real 10.0.2.3 stays reachable from build code except on
// port 53.
const DNSForwarder = "10.0.2.3"

// DNSForwarder6 is pasta's IPv6 forwarder, listed second: on an
// IPv6-only runner pasta gives the namespace no IPv4 at all, so
// DNSForwarder fails at once (network unreachable) and the resolver asks
// this one, which pasta answers with the host's first IPv6 resolver. A
// random unique-local address (RFC 4193), so that it names no real host.
const DNSForwarder6 = "fd3c:ad7e:9b51::53"

// nameservers are the forwarders a stack answers, in resolv.conf order.
// slirp4netns runs without IPv6 (cipack does not start it on an
// IPv6-only runner), so only pasta has a second one.
func nameservers(stack string) []string {
	if filepath.Base(stack) == StackSlirp {
		return []string{DNSForwarder}
	}
	return []string{DNSForwarder, DNSForwarder6}
}

// BlockedNets get an unreachable route in the namespace: the cloud
// metadata endpoints (169.254.169.254 on AWS, GCP and Azure, and the
// rest of IPv4 link-local; AWS's IPv6 one). Build code has no
// CAP_NET_ADMIN to remove them. The routes make an ordinary connect()
// fail at once; FilteredNets' netfilter rules are what holds when build
// code picks the interface itself.
var BlockedNets = []string{"169.254.0.0/16", "fd00:ec2::254/128"}

// hostAddrs are the host's own addresses but loopback, as /32 and /128
// nets: build code must not reach the runner's services bound to
// 0.0.0.0 through them (Docker's bridge address, a second interface;
// slirp4netns would connect to its eth0 address too). An address the
// namespace takes as its own (pasta copies the host's) stays local:
// the kernel looks up local addresses before the main table.
func hostAddrs() []string {
	addrs, _ := net.InterfaceAddrs()
	var out []string
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok || ipnet.IP.IsLoopback() {
			continue
		}
		bits := 128
		if ipnet.IP.To4() != nil {
			bits = 32
		}
		out = append(out, fmt.Sprintf("%s/%d", ipnet.IP, bits))
	}
	return out
}

// pastaArgs join the namespace at netns and configure it. Every port
// forwarding is off: pasta's default (-T auto, -U auto) forwards the
// namespace's loopback ports to the host's, which would hand build code
// the host's 127.0.0.1 services; --no-map-gw keeps the gateway address
// from standing for the host's loopback. --runas 0 keeps it root of its
// user namespace (StackUID on the host: pastaInUserns), not nobody, who
// is not mapped there; --no-netns-quit: netns is a /proc/self/fd name,
// no directory to watch.
func pastaArgs(netns, pidFile string) []string {
	return []string{"--quiet", "--runas", "0", "--netns", netns, "--no-netns-quit", "--config-net", "--no-map-gw",
		"-t", "none", "-u", "none", "-T", "none", "-U", "none",
		"--dns-forward", DNSForwarder, "--dns-forward", DNSForwarder6, "--pid", pidFile}
}

// startNetwork makes the namespace under work and, in isolated mode,
// starts pasta in it. It returns the namespace's path, the resolv.conf
// for build code ("" in none mode: nothing to resolve with), and stop,
// which ends pasta. pasta lives in the helper's PID namespace: if the
// helper dies, the kernel ends it too.
func startNetwork(n *Network, work string) (netns, resolv string, stop func(), err error) {
	stop = func() {}
	netns = filepath.Join(work, "netns")
	host := hostAddrs()
	if err := makeNetns(netns, append(slices.Clone(BlockedNets), host...), append(slices.Clone(FilteredNets), host...)); err != nil {
		return "", "", stop, fmt.Errorf("make the build's network namespace: %w", err)
	}
	if n.Mode == NetNone {
		return netns, "", stop, nil
	}
	if n.Mode != NetIsolated {
		return "", "", stop, fmt.Errorf("unknown network mode %q", n.Mode)
	}
	resolv = filepath.Join(work, "resolv.conf")
	if err := writeResolvConf(resolv, nameservers(n.Stack)); err != nil {
		return "", "", stop, err
	}
	if filepath.Base(n.Stack) == StackSlirp {
		stop, err = startSlirp(n.Stack, netns)
	} else {
		stop, err = startPasta(n.Stack, work)
	}
	return netns, resolv, stop, err
}

// startPasta runs pasta, which configures the namespace, then forks into
// the background and exits 0: its exit is the sign the network is up.
func startPasta(stack, work string) (func(), error) {
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		return func() {}, fmt.Errorf("run %s in its own user namespace: %w (util-linux)", stack, err)
	}
	if err := tunForStack(work); err != nil {
		return func() {}, err
	}
	cmd, files, err := pastaInUserns(nsenter, stack, work, pastaArgs)
	if err != nil {
		return func() {}, err
	}
	defer closeAll(files)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return func() {}, fmt.Errorf("start %s for the build's network: %w: %s", stack, err, pastaMessage(out.String()))
	}
	raw, err := os.ReadFile(filepath.Join(work, "pasta.pid"))
	pid, convErr := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil || convErr != nil || pid <= 1 {
		return func() {}, fmt.Errorf("%s wrote no pid file (%v): %s", stack, errors.Join(err, convErr), pastaMessage(out.String()))
	}
	return func() { _ = syscall.Kill(pid, syscall.SIGTERM) }, nil
}

// slirpArgs run slirp4netns on the namespace at netns: it configures
// tap0 (10.0.2.100/24, gateway 10.0.2.2, DNS 10.0.2.3), refuses the
// gateway as a way to the host's loopback, and confines itself; fd 3 is
// where it says it is ready.
func slirpArgs(netns string) []string {
	return []string{"--configure", "--mtu=65520", "--disable-host-loopback", "--enable-sandbox", "--enable-seccomp",
		"--netns-type=path", "--ready-fd=3", netns, "tap0"}
}

// startSlirp runs slirp4netns, which stays in the foreground (the
// helper's child, in its PID namespace), and waits until it is ready.
func startSlirp(stack, netns string) (func(), error) {
	ready, w, err := os.Pipe()
	if err != nil {
		return func() {}, err
	}
	defer ready.Close()
	out := &cappedBuffer{max: 4096}
	cmd := exec.Command(stack, slirpArgs(netns)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.Stdout, cmd.Stderr, cmd.ExtraFiles = out, out, []*os.File{w}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return func() {}, fmt.Errorf("start %s for the build's network: %w", stack, err)
	}
	stop := func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }
	_ = ready.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := ready.Read(make([]byte, 1)); err != nil {
		stop()
		return func() {}, fmt.Errorf("%s did not configure the build's network: %w: %s", stack, err, pastaMessage(out.String()))
	}
	return stop, nil
}

// cappedBuffer keeps the first max bytes written to it: a long-running
// stack's messages, for an error, without growing.
type cappedBuffer struct {
	max int
	mu  sync.Mutex
	b   []byte
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if room := c.max - len(c.b); room > 0 {
		c.b = append(c.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *cappedBuffer) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return string(c.b)
}

// pastaMessage is a stack's output on one line, without the lines pasta
// writes when no syslog listens.
func pastaMessage(s string) string {
	var keep []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" && !strings.HasPrefix(l, "Failed to send") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "; ")
}

// makeNetns makes a network namespace and keeps it at path (a bind mount
// of the nsfs file), owned by a user namespace kept next to it (userns,
// makeOwnedNetns), with its loopback up, the blocked nets unreachable (a
// connect() fails at once) and the filtered nets rejected by netfilter
// (which holds when build code picks the interface itself).
// The helper configures it from a locked thread that joined it and never
// returns to the Go runtime: it ends with its goroutine, so no other
// goroutine ever runs in the namespace.
func makeNetns(path string, blocked, filtered []string) error {
	if err := makeOwnedNetns(filepath.Join(filepath.Dir(path), "userns"), path); err != nil {
		return err
	}
	// The thread that joins the build's namespace must never run other
	// goroutines again, nor be the main thread (which cannot end).
	return onDoomedThread(func() error { return configureNetns(path, blocked, filtered) })
}

func configureNetns(path string, blocked, filtered []string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("join the build's network namespace: %w", err)
	}
	if err := loopbackUp(); err != nil {
		return fmt.Errorf("loopback up: %w", err)
	}
	for _, cidr := range blocked {
		if err := addUnreachable(cidr); err != nil {
			return fmt.Errorf("route %s unreachable: %w", cidr, err)
		}
	}
	if len(filtered) == 0 {
		return nil // nothing to refuse: no table
	}
	return addFilter(filtered)
}

// loopbackUp sets lo up in the calling thread's network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// addUnreachable adds an "unreachable" route for cidr in the calling
// thread's network namespace (one rtnetlink request, acknowledged): a
// connect() there fails at once with EHOSTUNREACH.
func addUnreachable(cidr string) error {
	_, ipnet, err := net.ParseCIDR(cidr)
	if err != nil {
		return err
	}
	family, addr := unix.AF_INET6, ipnet.IP.To16()
	if v4 := ipnet.IP.To4(); v4 != nil {
		family, addr = unix.AF_INET, v4
	}
	ones, _ := ipnet.Mask.Size()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	msg := routeRequest(family, ones, addr)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	return readAck(fd)
}

// routeRequest is RTM_NEWROUTE for an unreachable route to addr/ones in
// the main table.
func routeRequest(family, ones int, addr []byte) []byte {
	attrLen := unix.SizeofRtAttr + len(addr)
	total := unix.SizeofNlMsghdr + unix.SizeofRtMsg + (attrLen+3)&^3
	b := make([]byte, total)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(total))
	ne.PutUint16(b[4:], unix.RTM_NEWROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	ne.PutUint32(b[8:], 1) // sequence
	rt := b[unix.SizeofNlMsghdr:]
	rt[0], rt[1] = byte(family), byte(ones)
	rt[4], rt[5], rt[6], rt[7] = unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, unix.RT_SCOPE_UNIVERSE, unix.RTN_UNREACHABLE
	attr := rt[unix.SizeofRtMsg:]
	ne.PutUint16(attr[0:], uint16(attrLen))
	ne.PutUint16(attr[2:], unix.RTA_DST)
	copy(attr[unix.SizeofRtAttr:], addr)
	return b
}

// readAck reads the kernel's answer to one request: NLMSG_ERROR with 0
// is success, another code is the errno.
func readAck(fd int) error {
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	if n < unix.SizeofNlMsghdr+4 || binary.NativeEndian.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return errors.New("no acknowledgement from the kernel")
	}
	if code := int32(binary.NativeEndian.Uint32(buf[unix.SizeofNlMsghdr:])); code != 0 {
		return syscall.Errno(-code)
	}
	return nil
}

// writeResolvConf writes build code's resolv.conf from the host's.
func writeResolvConf(path string, servers []string) error {
	host, _ := os.ReadFile("/etc/resolv.conf") // none: the forwarders alone
	if err := os.WriteFile(path, []byte(resolvConfFor(host, servers)), 0o644); err != nil {
		return fmt.Errorf("build code's resolv.conf: %w", err)
	}
	return nil
}

// resolvConfFor keeps the host's search and options lines, with the
// stack's forwarders as the only nameservers: the host's may be on its
// loopback, out of build code's reach.
func resolvConfFor(host []byte, servers []string) string {
	var b strings.Builder
	s := bufio.NewScanner(bytes.NewReader(host))
	for s.Scan() {
		line := strings.TrimSpace(s.Text())
		if k, _, _ := strings.Cut(line, " "); k == "search" || k == "domain" || k == "options" {
			b.WriteString(line + "\n")
		}
	}
	for _, ns := range servers {
		b.WriteString("nameserver " + ns + "\n")
	}
	return b.String()
}

// joinNetwork puts config's container in the namespace at netns, with
// resolv (when there is one) as its /etc/resolv.conf.
func joinNetwork(config *specs.Spec, netns, resolv string) {
	config.Linux.Namespaces = append(config.Linux.Namespaces, specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: netns})
	if resolv != "" {
		config.Mounts = append(config.Mounts, specs.Mount{Destination: "/etc/resolv.conf", Type: "bind", Source: resolv,
			Options: []string{"rbind", "nosuid", "nodev", "noexec", "ro"}})
	}
}

// DefaultRoutes reports whether this network namespace has an IPv4 and
// an IPv6 default route: pasta copies that interface's addresses and
// routes into the build's namespace, and will not start without either
// (a runner with only a loopback); slirp4netns reaches only IPv4.
func DefaultRoutes() (v4, v6 bool) {
	r4, _ := os.ReadFile("/proc/net/route")
	r6, _ := os.ReadFile("/proc/net/ipv6_route")
	return defaultRoutesIn(r4, r6)
}

// defaultRoutesIn reads /proc/net/route and /proc/net/ipv6_route: a
// default route is one to everything (destination and mask or prefix
// zero), up, not a reject route, on an interface other than lo.
func defaultRoutesIn(r4, r6 []byte) (v4, v6 bool) {
	const up, reject = 0x1, 0x200
	for _, l := range strings.Split(string(r4), "\n") {
		f := strings.Fields(l)
		if len(f) >= 8 && f[0] != "lo" && f[1] == "00000000" && f[7] == "00000000" && flagsHave(f[3], up, reject) {
			v4 = true
		}
	}
	zero := strings.Repeat("0", 32)
	for _, l := range strings.Split(string(r6), "\n") {
		f := strings.Fields(l)
		if len(f) >= 10 && f[9] != "lo" && f[0] == zero && f[1] == "00" && flagsHave(f[8], up, reject) {
			v6 = true
		}
	}
	return v4, v6
}

// flagsHave reports whether the hex flags have want and not without.
func flagsHave(hex string, want, without uint64) bool {
	v, err := strconv.ParseUint(hex, 16, 32)
	return err == nil && v&want != 0 && v&without == 0
}
