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
	"time"
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
