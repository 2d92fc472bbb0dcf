package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cipack/cipack/internal/sandbox"
)

// The ways past build code's routes an adversarial review found (issue
// 33, review): a socket bound to the interface (SO_BINDTODEVICE), an
// IP_PKTINFO ifindex, the runner's link-local address with a scope id
// and an IPv6 multicast reach the metadata endpoint and the runner's
// services, with no capability. cipack runs in a namespace the test
// makes ("rvr", the runner: 198.19.64.1 and fd42:64::1 on rvr0, link-local
// fe80::1, a second address (on its lo), services on 0.0.0.0 and [::], and
// IPv6's default route through a link-local gateway as on cloud VMs),
// routed into a second one ("rvw", the world: the stand-in metadata
// endpoints 169.254.169.254 and fd00:ec2::254, and a server on every
// address). Each stack's build code reaches the world, by IPv4 and (pasta)
// IPv6, and no metadata endpoint or runner service, whichever way it
// tries; the servers count what reaches them. Nothing leaves the two
// namespaces but the push, through a forwarder on rvr's 127.0.0.1 to the
// test's registry.
func (w *netWorld) runnerByAnyInterface(t *testing.T) {
	rn := startRunnerNet(t)
	for _, c := range []struct {
		name string
		hide []string
		v6   bool
	}{{"pasta", nil, true}, {"slirp4netns", []string{"pasta"}, false}} {
		t.Run(c.name, func(t *testing.T) {
			rn.reset()
			r := w.buildAt(t, rn.place(c.v6), "runner-"+c.name, c.hide, true)
			r.mustPush(t)
			r.reached(t, "egress4", "netspy-world 198.19.64.2:80")
			if c.v6 {
				r.reached(t, "egress6", "netspy-world [fd42:64::2]:80")
				r.reached(t, "dns", "203.0.113.7")
			}
			for _, probe := range []string{"bindmeta", "bindmeta6", "bindsecond", "bindsecond6", "linklocal", "mcast", "pktinfo"} {
				r.blocked(t, probe)
			}
			r.unroutable(t, "hostaddr")
			if got, want := rn.seen(), rn.wantSeen(c.v6); !slices.Equal(got, want) {
				t.Errorf("the servers saw %q, want only the world's %q: build code reached the runner or a metadata endpoint", got, want)
			}
		})
	}
	t.Run("ipv6_only_runner_resolves", func(t *testing.T) { w.ipv6OnlyRunner(t, rn) })
}

// ipv6OnlyRunner takes the runner's IPv4 default route away and wants
// pasta's IPv6 DNS forwarder to answer: build code resolves through the
// runner's IPv6 resolver and reaches the world over IPv6.
func (w *netWorld) ipv6OnlyRunner(t *testing.T, rn *runnerNet) {
	r4 := []string{"-n", rn.rvr, "route", "%s", "default", "via", "198.19.64.2"}
	ip := func(verb string) error {
		args := slices.Clone(r4)
		args[3] = verb
		return exec.Command("ip", args...).Run()
	}
	if err := ip("del"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ip("add") })
	rn.reset()
	at := rn.place(true)
	at.resolv = filepath.Join(fx.Dir, "netspy-rvr6-resolv-"+randSuffix()+".conf")
	if err := os.WriteFile(at.resolv, []byte("nameserver fd42:64::2\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := w.buildAt(t, at, "runner-ipv6-only", nil, false)
	r.mustPush(t)
	r.reached(t, "dns", "203.0.113.7")
	r.reached(t, "egress6", "netspy-world [fd42:64::2]:80")
	r.blocked(t, "egress4")
	if got := r.nameservers(); !slices.Equal(got, []string{sandbox.DNSForwarder, sandbox.DNSForwarder6}) {
		t.Errorf("build code's resolvers: %q, want both of pasta's forwarders", got)
	}
	if got := lineWith(r.stderr+r.stdout, "netspy: interfaces"); got != "netspy: interfaces lo rvr0" {
		t.Errorf("want pasta's copy of rvr0: %q", got)
	}
}

// runnerNet is the runner's namespace and the world's, and what their
// servers saw ("service local-address"), since the last reset.
type runnerNet struct {
	rvr, rvw, resolv string
	mu               sync.Mutex
	hits             []string
}

func startRunnerNet(t *testing.T) *runnerNet {
	pid := os.Getpid()
	rn := &runnerNet{rvr: fmt.Sprintf("cipack-rvr-%d", pid), rvw: fmt.Sprintf("cipack-rvw-%d", pid)}
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", rn.rvr).Run()
		_ = exec.Command("ip", "netns", "del", rn.rvw).Run()
	})
	r, v := []string{"-n", rn.rvr}, []string{"-n", rn.rvw}
	for _, args := range [][]string{
		{"netns", "add", rn.rvr}, {"netns", "add", rn.rvw},
		append(r, "link", "set", "lo", "up"), append(v, "link", "set", "lo", "up"),
		append(r, "link", "add", "rvr0", "type", "veth", "peer", "name", "rvw0", "netns", rn.rvw),
		append(r, "addr", "add", "198.19.64.1/24", "dev", "rvr0"),
		append(r, "addr", "add", "fd42:64::1/64", "dev", "rvr0", "nodad"),
		append(r, "addr", "add", "fe80::1/64", "dev", "rvr0", "nodad"),
		append(r, "addr", "add", "198.19.65.1/32", "dev", "lo"),
		append(r, "addr", "add", "fd42:65::1/128", "dev", "lo", "nodad"),
		append(r, "link", "set", "rvr0", "up"),
		append(v, "addr", "add", "198.19.64.2/24", "dev", "rvw0"),
		append(v, "addr", "add", "fd42:64::2/64", "dev", "rvw0", "nodad"),
		append(v, "addr", "add", "fe80::2/64", "dev", "rvw0", "nodad"),
		append(v, "addr", "add", "169.254.169.254/32", "dev", "lo"),
		append(v, "addr", "add", "fd00:ec2::254/128", "dev", "lo", "nodad"),
		append(v, "link", "set", "rvw0", "up"),
		append(r, "route", "add", "default", "via", "198.19.64.2"),
		append(r, "-6", "route", "add", "default", "via", "fe80::2", "dev", "rvr0"),
		append(v, "route", "add", "198.19.65.0/24", "via", "198.19.64.1"),
		append(v, "-6", "route", "add", "fd42:65::/64", "via", "fd42:64::1"),
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	rn.serve(t)
	rn.resolv = filepath.Join(fx.Dir, "netspy-rvr-resolv-"+randSuffix()+".conf")
	if err := os.WriteFile(rn.resolv, []byte("nameserver 198.19.64.2\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return rn
}

// serve starts the runner's services, the world's, the world's resolver
// and the registry forwarder; the test stops them (listenAt). The
// wildcard binds are inside the namespaces this test made (rvr, rvw), never
// the host's, where only the forwarder's 127.0.0.1 is: the runner's
// services stand for the `[::]` and 0.0.0.0 listeners build code must not
// reach by any of the runner's addresses (link-local, multicast, a second
// address), so they must answer on all of them.
func (rn *runnerNet) serve(t *testing.T) {
	rvr, rvw := "/run/netns/"+rn.rvr, "/run/netns/"+rn.rvw
	go rn.answerTCP(listenAt(t, rvr, "tcp", ":7777").(net.Listener), "runner-tcp", "netspy-runner-secret")
	go rn.answerUDP(listenAt(t, rvr, "udp", ":7778").(net.PacketConn), "runner-udp")
	go rn.answerTCP(listenAt(t, rvw, "tcp", ":80").(net.Listener), "world", "netspy-world")
	go rn.answerUDP(listenAt(t, rvw, "udp", "169.254.169.254:53").(net.PacketConn), "metadata-udp")
	go serveDNS(listenAt(t, rvw, "udp", "198.19.64.2:53").(net.PacketConn), net.ParseIP("203.0.113.7"))
	go serveDNS(listenAt(t, rvw, "udp", "[fd42:64::2]:53").(net.PacketConn), net.ParseIP("203.0.113.7"))
	go forward(listenAt(t, rvr, "tcp", fx.Registry.Host).(net.Listener), fx.Registry.Host)
}

// listenAt listens in the namespace at path (a thread that joined it and
// is never unlocked, as listenIn); the test closes the listener.
func listenAt(t *testing.T, path, network, addr string) any {
	v, err := inNamespace(path, func() (any, error) {
		if network == "udp" {
			return net.ListenPacket(network, addr)
		}
		return net.Listen(network, addr)
	})
	if err != nil {
		t.Fatalf("listen on %s %s in %s: %v", network, addr, path, err)
	}
	t.Cleanup(func() { v.(io.Closer).Close() })
	return v
}

// answerTCP records each connection and answers it with answer and the
// address it was reached at.
func (rn *runnerNet) answerTCP(ln net.Listener, service, answer string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		rn.hit(service, c.LocalAddr().String())
		fmt.Fprintf(c, "%s %s\n", answer, c.LocalAddr())
		c.Close()
	}
}

// answerUDP records each datagram and answers it.
func (rn *runnerNet) answerUDP(pc net.PacketConn, service string) {
	buf := make([]byte, 512)
	for {
		_, from, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		rn.hit(service, pc.LocalAddr().String())
		_, _ = pc.WriteTo([]byte("netspy-runner-secret "+service+"\n"), from)
	}
}

// forward relays each connection to ln (in the runner's namespace) to
// target, dialled from the test's: the runner's loopback registry.
func forward(ln net.Listener, target string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			go func() { _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite() }()
			_, _ = io.Copy(c, up)
		}()
	}
}

func (rn *runnerNet) hit(service, addr string) {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rn.hits = append(rn.hits, service+" "+addr)
}

func (rn *runnerNet) reset() {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	rn.hits = nil
}

// seen is what the servers saw, sorted.
func (rn *runnerNet) seen() []string {
	rn.mu.Lock()
	defer rn.mu.Unlock()
	out := slices.Clone(rn.hits)
	slices.Sort(out)
	return out
}

// wantSeen is what the servers see from a build: the egress tries only.
func (rn *runnerNet) wantSeen(v6 bool) []string {
	if v6 {
		return []string{"world 198.19.64.2:80", "world [fd42:64::2]:80"}
	}
	return []string{"world 198.19.64.2:80"}
}

// place is a build in the runner's namespace: its resolver is the
// world's, and the spy tries every way past the routes. "IF" is the
// spy's interface.
func (rn *runnerNet) place(v6 bool) place {
	tries := []string{"egress4=tcp:198.19.64.2:80",
		"bindmeta=bind:169.254.169.254:80", "bindmeta6=bind:[fd00:ec2::254]:80",
		"bindsecond=bind:198.19.65.1:7777", "bindsecond6=bind:[fd42:65::1]:7777",
		"linklocal=tcp:[fe80::1%IF]:7777", "mcast=udp:[ff02::1%IF]:7778", "pktinfo=pktinfo:169.254.169.254:53"}
	env := []string{"NETSPY_HOSTADDR=198.19.65.1:7777"}
	if v6 {
		tries = append(tries, "egress6=tcp:[fd42:64::2]:80")
		env = append(env, "NETSPY_DNS=registry.netspy.test")
	}
	return place{netns: "/run/netns/" + rn.rvr, resolv: rn.resolv, env: append(env, "NETSPY_TRY="+strings.Join(tries, " "))}
}

// inNamespace runs fn on a thread that joined the network namespace at
// path. The thread is never unlocked: it ends with its goroutine, so no
// other code runs in the namespace; sockets fn makes stay there.
func inNamespace(path string, fn func() (any, error)) (any, error) {
	type res struct {
		v   any
		err error
	}
	c := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			c <- res{nil, err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			c <- res{nil, err}
			return
		}
		v, err := fn()
		c <- res{v, err}
	}()
	r := <-c
	return r.v, r.err
}
