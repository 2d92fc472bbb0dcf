// Command netprobe is a spy buildpack's bin/build for the network tests
// of pull mode: run as build code, it tries what a hostile buildpack
// would on a CI runner and prints one "netspy: NAME reached|blocked ..."
// line per try. Its targets come from the platform's env files
// (NETSPY_*), so the test decides them; it always exits 0, so the build
// goes on to push.
package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if strings.HasSuffix(os.Args[0], "detect") {
		return // detect: always take part
	}
	env := func(k string) string {
		b, _ := os.ReadFile(filepath.Join(os.Getenv("CNB_PLATFORM_DIR"), "env", k))
		return strings.TrimSpace(string(b))
	}
	if a := env("NETSPY_TCP"); a != "" {
		report("tcp")(readLine("tcp", a))
	}
	if a := env("NETSPY_REGISTRY"); a != "" {
		report("registry")(httpGet(http.DefaultTransport, "http://"+a+"/v2/_catalog"))
	}
	if a := env("NETSPY_ABSTRACT"); a != "" {
		report("abstract")(readLine("unix", "@"+a))
	}
	if a := env("NETSPY_HOSTADDR"); a != "" {
		// The runner's own address, where nothing listens: refused means
		// the stack connected on build code's behalf (a service bound to
		// 0.0.0.0 there would have answered); no route means blocked.
		report("hostaddr")(readLine("tcp", a))
	}
	if env("NETSPY_METADATA") == "1" {
		// One attempt, one second: it must fail inside the container,
		// never reach a network.
		began := time.Now()
		_, err := readLine("tcp", "169.254.169.254:80")
		fmt.Printf("netspy: metadata blocked=%t after %dms: %v\n", err != nil, time.Since(began).Milliseconds(), err)
	}
	if tries := env("NETSPY_TRY"); tries != "" {
		tryAll(tries)
	}
	if env("NETSPY_PROXY") == "1" {
		// Through HTTP_PROXY, as cipack passed it on.
		tr := &http.Transport{Proxy: http.ProxyFromEnvironment}
		report("proxy")(httpGet(tr, "http://netspy.invalid/probe"))
	}
	if name := env("NETSPY_DNS"); name != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		addrs, err := (&net.Resolver{PreferGo: true}).LookupHost(ctx, name)
		cancel()
		report("dns")(strings.Join(addrs, ","), err)
	}
	if b, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "nameserver") {
				fmt.Printf("netspy: resolv.conf %s\n", l)
			}
		}
	}
	ifaces, _ := net.Interfaces()
	var names []string
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	fmt.Printf("netspy: interfaces %s\n", strings.Join(names, " "))
	if env("NETSPY_SLEEP") == "1" {
		fmt.Println("netspy: sleeping") // for a test that kills the build now
		time.Sleep(time.Minute)
	}
}

// report prints what one try got: report("tcp")(readLine(...)).
func report(name string) func(string, error) {
	return func(got string, err error) {
		if err != nil {
			fmt.Printf("netspy: %s blocked: %v\n", name, err)
			return
		}
		fmt.Printf("netspy: %s reached: %s\n", name, strings.TrimSpace(got))
	}
}

// readLine connects (one attempt, one second) and reads one line.
func readLine(network, addr string) (string, error) {
	c, err := net.DialTimeout(network, addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

func httpGet(tr http.RoundTripper, url string) (string, error) {
	c := &http.Client{Transport: tr, Timeout: 3 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 512))
	return strings.TrimSpace(resp.Status + " " + string(b)), err
}

// tryAll runs the tries in NETSPY_TRY, "name=how:address" separated by
// spaces, "IF" in an address standing for the first interface but lo.
// how: tcp (connect and read a line), bind (the same on a socket bound
// to that interface with SO_BINDTODEVICE: past the route lookup), udp
// (send, read the answer) and pktinfo (the same with the interface as an
// IP_PKTINFO ifindex). None needs a capability.
func tryAll(tries string) {
	iface := firstInterface()
	for _, t := range strings.Fields(tries) {
		name, spec, _ := strings.Cut(t, "=")
		how, addr, _ := strings.Cut(spec, ":")
		addr = strings.ReplaceAll(addr, "%IF", "%"+iface.Name)
		switch how {
		case "tcp":
			report(name)(readLine("tcp", addr))
		case "bind":
			report(name)(boundLine(addr, iface.Name))
		case "udp", "pktinfo":
			report(name)(udpAnswer(addr, how == "pktinfo", iface.Index))
		}
	}
}

func firstInterface() net.Interface {
	ifaces, _ := net.Interfaces()
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback == 0 {
			return i
		}
	}
	return net.Interface{Name: "lo", Index: 1}
}

// boundLine is readLine from a socket bound to the interface dev.
func boundLine(addr, dev string) (string, error) {
	d := net.Dialer{Timeout: time.Second, Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev) }); cerr != nil {
			return cerr
		}
		return err
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// udpAnswer sends one datagram to addr and reads the answer (one second),
// with an IP_PKTINFO naming interface ifindex if pktinfo.
func udpAnswer(addr string, pktinfo bool, ifindex int) (string, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return "", err
	}
	network := "udp6"
	if ua.IP.To4() != nil {
		network = "udp4"
	}
	c, err := net.ListenUDP(network, nil)
	if err != nil {
		return "", err
	}
	defer c.Close()
	var oob []byte
	if pktinfo {
		oob = unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: int32(ifindex)})
	}
	if _, _, err := c.WriteMsgUDP([]byte("netspy\n"), oob, ua); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	b := make([]byte, 512)
	n, from, err := c.ReadFromUDP(b)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("from %s: %s", from, b[:n]), nil
}
