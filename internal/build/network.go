package build

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/sandbox"
)

// Network modes of --network: build code's network in pull mode.
const (
	NetworkIsolated = sandbox.NetIsolated
	NetworkHost     = sandbox.NetHost
	NetworkNone     = sandbox.NetNone
)

// checkNetwork validates --network; empty is the default (isolated when
// a network stack is installed, else host).
func checkNetwork(mode string) error {
	switch mode {
	case "", NetworkIsolated, NetworkHost, NetworkNone:
		return nil
	}
	return exit.Usagef("--network", "use isolated (a network of its own, the default), host (the runner's network) or none (loopback only)",
		"unknown network mode %q", mode)
}

// noteInBuilderNetwork says that --network does nothing in the builder:
// there build code runs in the step's own container, whose network the CI
// (the pod, the job container) decides, and cipack makes no namespace.
func noteInBuilderNetwork(mode string, log io.Writer) {
	if mode != "" && log != nil {
		fmt.Fprintf(log, "cipack: --network %s applies to pull mode only: in the builder, build code has the step container's network\n", mode)
	}
}

// defaultRoutes is sandbox.DefaultRoutes; tests replace it.
var defaultRoutes = sandbox.DefaultRoutes

// chooseNetwork decides build code's network in pull mode (nil: the
// host's) and says so in the log when it is not the isolated default.
// The credential phases and a --trust-builder creator always keep the
// host's network: they push to the registries, loopback ones included.
func chooseNetwork(opts Options, lookPath func(string) (string, error), environ []string, log io.Writer) (*sandbox.Network, error) {
	if log == nil {
		log = io.Discard // Deps without a log (tests of other checks)
	}
	switch opts.Network {
	case NetworkHost:
		fmt.Fprintf(log, "cipack: --network host: build code shares the runner's network (its loopback services, abstract unix sockets and cloud metadata endpoint)\n")
		return nil, nil
	case NetworkNone:
		fmt.Fprintf(log, "cipack: --network none: build code has a loopback and nothing else\n")
		return &sandbox.Network{Mode: NetworkNone}, nil
	}
	stack, why, hint := findStack(lookPath)
	if stack == "" {
		if opts.Network == NetworkIsolated {
			return nil, exit.New(exit.Sandbox, "--network", fmt.Errorf("--network isolated: %s", why), hint)
		}
		fmt.Fprintf(log, "cipack: warning: build code shares the runner's network (its loopback services and cloud metadata endpoint): "+
			"%s; %s to say you mean it\n", why, hint)
		return nil, nil
	}
	if opts.TrustBuilder {
		fmt.Fprintf(log, "cipack: --trust-builder: the builder's creator holds the credentials and pushes, so it runs on the runner's network\n")
	}
	warnLoopbackProxy(environ, log)
	return &sandbox.Network{Mode: NetworkIsolated, Stack: stack}, nil
}

// findStack picks the network stack: pasta, which needs a default route
// to copy, else slirp4netns, which reaches IPv4 only and so is no stack
// on an IPv6-only runner. Without one it says why and what to do.
func findStack(lookPath func(string) (string, error)) (stack, why, hint string) {
	v4, v6 := defaultRoutes()
	pasta, pastaErr := lookPath(sandbox.StackPasta)
	if pastaErr == nil && (v4 || v6) {
		return pasta, "", ""
	}
	slirp, slirpErr := lookPath(sandbox.StackSlirp)
	switch {
	case slirpErr == nil && (v4 || !v6):
		return slirp, "", ""
	case slirpErr == nil:
		return "", "the runner is IPv6-only, and slirp4netns reaches IPv4 only",
			fmt.Sprintf("install %s (apt-get install %s), or pass --network host", sandbox.StackPasta, sandbox.StackPackage)
	case pastaErr == nil:
		return "", "the runner has no default route, which pasta needs", "pass --network none for a loopback only, or --network host"
	}
	return "", fmt.Sprintf("no %s or %s on PATH for a network of its own", sandbox.StackPasta, sandbox.StackSlirp),
		fmt.Sprintf("install it (Debian and Ubuntu: apt-get install %s), or pass --network host", sandbox.StackPackage)
}

// warnLoopbackProxy warns about a proxy on the runner's loopback: build
// code in its own network cannot reach it (the credential phases still
// do). Not refused: many builds download nothing, and the credential
// phases reach their registries through it.
func warnLoopbackProxy(environ []string, log io.Writer) {
	for _, e := range environ {
		k, v, _ := strings.Cut(e, "=")
		switch strings.ToUpper(k) {
		case "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY":
		default:
			continue
		}
		if host, ok := loopbackHost(v); ok {
			fmt.Fprintf(log, "cipack: warning: %s names %s, on the runner's loopback, which build code in its own network cannot reach: "+
				"serve the proxy on another address, or pass --network host if buildpacks need it\n", k, host)
		}
	}
}

// loopbackHost reports the host of a proxy URL when it is a loopback
// address or localhost.
func loopbackHost(proxy string) (string, bool) {
	if !strings.Contains(proxy, "://") {
		proxy = "http://" + proxy
	}
	u, err := url.Parse(proxy)
	if err != nil || u.Hostname() == "" {
		return "", false
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); ip != nil {
		return h, ip.IsLoopback()
	}
	return h, h == "localhost" || strings.HasSuffix(h, ".localhost")
}
