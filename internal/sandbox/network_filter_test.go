package sandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The namespace cipack makes for build code, wired by a veth to a
// test-made "world" namespace that holds the metadata addresses
// (169.254.169.254, fd00:ec2::254) and listens on every address. Build
// code's ways past the unreachable routes (issue 33, review) are all
// refused there: an interface chosen with SO_BINDTODEVICE, an IP_PKTINFO
// ifindex, a link-local address with a scope id, an IPv6 multicast. The
// same bound socket reaches the world's ordinary address, and IPv6
// egress works through a link-local gateway (the filter lets NDP pass).
// No packet leaves the two namespaces.
func TestNetnsFilterHoldsWhenBuildCodePicksTheInterface(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces)")
	}
	w := newFilterWorld(t)
	for _, c := range []struct {
		name, addr string
		bind, want bool // want: reached
	}{
		{"v4 egress", "198.19.7.2:80", false, true},
		{"v4 egress, bound to the device", "198.19.7.2:80", true, true},
		{"v6 egress via a link-local gateway", "[fd42:7::2]:80", false, true},
		{"metadata", "169.254.169.254:80", false, false},
		{"metadata, bound to the device", "169.254.169.254:80", true, false},
		{"aws v6 metadata, bound", "[fd00:ec2::254]:80", true, false},
		{"the world's link-local", "[fe80::2%b0]:80", false, false},
		{"a host address, bound", "198.19.8.1:80", true, false},
	} {
		err := w.dial(t, c.addr, c.bind, c.want)
		if (err == nil) != c.want {
			t.Errorf("%s (%s): got %v, want reached=%t", c.name, c.addr, err, c.want)
		}
		// IPv4 refuses at once. An IPv6 reject's ICMPv6 error comes back
		// on lo and misses a socket bound to b0, so IPv6 times out.
		if !c.want && strings.Contains(c.addr, ".") && !errors.Is(err, syscall.EHOSTUNREACH) {
			t.Errorf("%s: %v, want no route to host at once", c.name, err)
		}
	}
	if got := w.accepted(); len(got) != 3 {
		t.Errorf("the world accepted connections to %v: want only the three egress ones", got)
	}
	w.sendUDP(t, "[ff02::1%b0]:5353", 0)
	w.sendUDP(t, "169.254.169.254:53", w.ifindex(t))
	if n := w.datagrams(); n != 0 {
		t.Errorf("the world got %d datagrams from build code's namespace (multicast, IP_PKTINFO): want none", n)
	}
}

// filterWorld is cipack's namespace (netns, with b0) and the world's
// (world, with w0), and the world's UDP listener.
type filterWorld struct {
	netns, world string
	udp          []net.PacketConn
	mu           sync.Mutex
	conns        []string // the local addresses of accepted connections
}

func newFilterWorld(t *testing.T) *filterWorld {
	w := &filterWorld{netns: filepath.Join(t.TempDir(), "netns"), world: fmt.Sprintf("cipack-sbw-%d", os.Getpid())}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", w.world).Run() })
	if err := makeNetns(w.netns, BlockedNets, append(FilteredNets, "198.19.8.1/32")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Unmount(w.netns, unix.MNT_DETACH)
		_ = unix.Unmount(filepath.Join(filepath.Dir(w.netns), "userns"), unix.MNT_DETACH)
	})
	inBuild := []string{"nsenter", "--net=" + w.netns, "ip"}
	for _, args := range [][]string{
		{"ip", "netns", "add", w.world},
		{"ip", "-n", w.world, "link", "set", "lo", "up"},
		{"ip", "-n", w.world, "link", "add", "w0", "type", "veth", "peer", "name", "b0"},
		{"ip", "-n", w.world, "link", "set", "b0", "netns", w.netns},
		{"ip", "-n", w.world, "addr", "add", "198.19.7.2/24", "dev", "w0"},
		{"ip", "-n", w.world, "addr", "add", "198.19.8.1/32", "dev", "lo"},
		{"ip", "-n", w.world, "addr", "add", "169.254.169.254/32", "dev", "lo"},
		{"ip", "-n", w.world, "addr", "add", "fd00:ec2::254/128", "dev", "lo"},
		{"ip", "-n", w.world, "addr", "add", "fd42:7::2/64", "dev", "w0", "nodad"},
		{"ip", "-n", w.world, "addr", "add", "fe80::2/64", "dev", "w0", "nodad"},
		{"ip", "-n", w.world, "link", "set", "w0", "up"},
	} {
		run(t, args...)
	}
	for _, args := range [][]string{
		{"addr", "add", "198.19.7.1/24", "dev", "b0"},
		{"addr", "add", "fd42:7::1/64", "dev", "b0", "nodad"},
		{"link", "set", "b0", "up"},
		{"route", "add", "default", "via", "198.19.7.2"},
		{"-6", "route", "add", "default", "via", "fe80::2", "dev", "b0"},
	} {
		run(t, append(inBuild, args...)...)
	}
	w.listen(t)
	return w
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// listen serves TCP :80 (every address, both families) and counts UDP
// datagrams on :53 and :5353, in the world.
func (w *filterWorld) listen(t *testing.T) {
	inNetns(t, "/run/netns/"+w.world, func() {
		ln, err := net.Listen("tcp", ":80")
		if err != nil {
			t.Error(err)
			return
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for c, err := ln.Accept(); err == nil; c, err = ln.Accept() {
				w.mu.Lock()
				w.conns = append(w.conns, c.LocalAddr().String())
				w.mu.Unlock()
				c.Close()
			}
		}()
		for _, port := range []string{":53", ":5353"} {
			pc, err := net.ListenPacket("udp", port)
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { pc.Close() })
			w.udp = append(w.udp, pc)
		}
	})
}

func (w *filterWorld) accepted() []string {
	time.Sleep(100 * time.Millisecond) // the last accept's bookkeeping
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.conns)
}

// datagrams counts what the world's UDP listeners got within 300 ms.
func (w *filterWorld) datagrams() int {
	n := 0
	for _, pc := range w.udp {
		_ = pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		for range 16 {
			if _, _, err := pc.ReadFrom(make([]byte, 64)); err != nil {
				break
			}
			n++
		}
	}
	return n
}

// inNetns runs fn on a thread in the namespace at path. The thread is
// never unlocked: it ends with its goroutine, so no other code runs in
// the namespace; sockets fn makes stay there.
func inNetns(t *testing.T, path string, fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		f, err := os.Open(path)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

// dial connects from cipack's namespace, bound to b0 if bind, as build
// code without capabilities can. What should connect gets 3 s (the first
// packet waits for ARP or NDP), what should not 1 s.
func (w *filterWorld) dial(t *testing.T, addr string, bind, reach bool) error {
	var err error
	inNetns(t, w.netns, func() {
		d := net.Dialer{Timeout: time.Second}
		if reach {
			d.Timeout = 3 * time.Second
		}
		if bind {
			d.Control = func(_, _ string, c syscall.RawConn) error {
				return c.Control(func(fd uintptr) { _ = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "b0") })
			}
		}
		var c net.Conn
		if c, err = d.Dial("tcp", addr); err == nil {
			c.Close()
		}
	})
	return err
}

// sendUDP sends one datagram to addr from cipack's namespace, out of
// interface ifindex when it is not 0 (IP_PKTINFO, IPv4).
func (w *filterWorld) sendUDP(t *testing.T, addr string, ifindex int) {
	inNetns(t, w.netns, func() {
		ua, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		c, err := net.ListenUDP("udp", nil)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		var oob []byte
		if ifindex != 0 {
			oob = unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: int32(ifindex)})
		}
		_, _, _ = c.WriteMsgUDP([]byte("probe"), oob, ua) // an error is the filter's refusal
	})
}

func (w *filterWorld) ifindex(t *testing.T) int {
	var idx int
	inNetns(t, w.netns, func() {
		i, err := net.InterfaceByName("b0")
		if err != nil {
			t.Error(err)
			return
		}
		idx = i.Index
	})
	return idx
}

// BenchmarkMakeNetns is the namespace's cost per build-code phase, with
// the routes alone and with the netfilter rules too: the rules' share.
func BenchmarkMakeNetns(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces)")
	}
	host := hostAddrs()
	for _, c := range []struct {
		name     string
		filtered []string
	}{{"routes", nil}, {"routes+filter", append(slices.Clone(FilteredNets), host...)}} {
		b.Run(c.name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "netns")
			for b.Loop() {
				if err := makeNetns(path, append(slices.Clone(BlockedNets), host...), c.filtered); err != nil {
					b.Fatal(err)
				}
				for _, p := range []string{path, filepath.Join(filepath.Dir(path), "userns")} {
					if err := unix.Unmount(p, unix.MNT_DETACH); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// pasta starts through nsenter as root of the namespace's owner user
// namespace (StackUID on the host), given the namespaces and its pid
// file as open files: the helper's work directory is closed to it.
func TestPastaRunsAsRootOfItsUserNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a user namespace, chown)")
	}
	work := t.TempDir()
	netns := filepath.Join(work, "netns")
	if err := makeNetns(netns, nil, nil); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = unix.Unmount(netns, unix.MNT_DETACH)
		_ = unix.Unmount(filepath.Join(work, "userns"), unix.MNT_DETACH)
	}()
	cmd, files, err := pastaInUserns("/usr/bin/nsenter", "/usr/bin/pasta", work, pastaArgs)
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll(files)
	args := strings.Join(cmd.Args, " ")
	for _, want := range []string{"--user=/proc/self/fd/3 --setuid=0 --setgid=0 -- /usr/bin/pasta", "--runas 0", "--netns /proc/self/fd/4", "--pid /proc/self/fd/5"} {
		if !strings.Contains(args, want) {
			t.Errorf("%s: lacks %q", args, want)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(files[2].Fd()), &st); err != nil || st.Uid != StackUID {
		t.Errorf("pid file: uid %d (%v), want %d", st.Uid, err, StackUID)
	}
	own, _ := os.Readlink("/proc/self/ns/user")
	var ino unix.Stat_t
	if err := unix.Fstat(int(files[0].Fd()), &ino); err != nil || own == fmt.Sprintf("user:[%d]", ino.Ino) {
		t.Errorf("fd 3 is the host's user namespace (%v)", err)
	}
}
