package build

import (
	"errors"
	"os/exec"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/pull"
	"github.com/cipack/cipack/internal/sandbox"
)

func TestNetworkOption(t *testing.T) {
	app := t.TempDir()
	for _, mode := range []string{"", NetworkIsolated, NetworkHost, NetworkNone} {
		o := Options{Image: "r.example/app", AppPath: app, SourceRoot: app, Network: mode}
		if err := o.Validate(); err != nil {
			t.Errorf("--network %q: %v", mode, err)
		}
	}
	o := Options{Image: "r.example/app", AppPath: app, SourceRoot: app, Network: "bridge"}
	err := o.Validate()
	var e *exit.Error
	if !errors.As(err, &e) || e.Code != exit.Usage || !strings.Contains(err.Error(), "--network") {
		t.Errorf("--network bridge: want a usage error naming --network, got %v", err)
	}
}

func TestChooseNetwork(t *testing.T) {
	found := func(name string) (string, error) {
		if name == sandbox.StackPasta {
			return "/usr/bin/pasta", nil
		}
		return "", exec.ErrNotFound
	}
	both := func(name string) (string, error) { return "/usr/bin/" + name, nil }
	slirpOnly := func(name string) (string, error) {
		if name == sandbox.StackSlirp {
			return "/usr/bin/slirp4netns", nil
		}
		return "", exec.ErrNotFound
	}
	missing := func(string) (string, error) { return "", exec.ErrNotFound }
	cases := []struct {
		name     string
		opts     Options
		lookPath func(string) (string, error)
		env      []string
		mode     string // "" : the host's network
		log      string
		code     int
		noRoute  bool   // the runner has no default route
		v6Only   bool   // the runner has an IPv6 default route only
		stack    string // the stack isolated mode runs, when it matters
	}{
		{name: "default with pasta", lookPath: found, mode: NetworkIsolated},
		{name: "default without pasta", lookPath: missing, log: "apt-get install passt"},
		{name: "isolated without pasta", opts: Options{Network: NetworkIsolated}, lookPath: missing, code: exit.Sandbox},
		{name: "host", opts: Options{Network: NetworkHost}, lookPath: found, log: "--network host: build code shares the runner's network"},
		{name: "none", opts: Options{Network: NetworkNone}, lookPath: missing, mode: NetworkNone, log: "loopback and nothing else"},
		{name: "loopback proxy", lookPath: found, env: []string{"https_proxy=http://127.0.0.1:3128"}, mode: NetworkIsolated,
			log: "https_proxy names 127.0.0.1"},
		{name: "proxy elsewhere", lookPath: found, env: []string{"HTTP_PROXY=http://10.1.2.3:3128", "NO_PROXY=localhost"}, mode: NetworkIsolated},
		{name: "default without a default route", lookPath: found, noRoute: true, log: "the runner has no default route"},
		{name: "slirp4netns without a default route", lookPath: both, noRoute: true, mode: NetworkIsolated, stack: "/usr/bin/slirp4netns"},
		{name: "pasta first", lookPath: both, mode: NetworkIsolated, stack: "/usr/bin/pasta"},
		{name: "pasta on an IPv6-only runner", lookPath: both, v6Only: true, mode: NetworkIsolated, stack: "/usr/bin/pasta"},
		{name: "no slirp4netns on an IPv6-only runner", lookPath: slirpOnly, v6Only: true, log: "the runner is IPv6-only"},
		{name: "isolated, IPv6-only, slirp4netns only", opts: Options{Network: NetworkIsolated}, lookPath: slirpOnly, v6Only: true, code: exit.Sandbox},
		{name: "isolated without a default route", opts: Options{Network: NetworkIsolated}, lookPath: found, noRoute: true, code: exit.Sandbox},
		{name: "none without a default route", opts: Options{Network: NetworkNone}, lookPath: found, noRoute: true, mode: NetworkNone, log: "loopback"},
		{name: "trusted creator", opts: Options{TrustBuilder: true}, lookPath: found, mode: NetworkIsolated, log: "--trust-builder"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func(f func() (bool, bool)) { defaultRoutes = f }(defaultRoutes)
			defaultRoutes = func() (bool, bool) { return !c.noRoute && !c.v6Only, !c.noRoute }
			var log strings.Builder
			n, err := chooseNetwork(c.opts, c.lookPath, c.env, &log)
			if c.code != 0 {
				var e *exit.Error
				if !errors.As(err, &e) || e.Code != c.code || !strings.Contains(err.Error(), "--network") {
					t.Fatalf("want exit %d naming --network, got %v", c.code, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := modeOf(n); got != c.mode {
				t.Errorf("network %q, want %q", got, c.mode)
			}
			if c.stack != "" && n.Stack != c.stack {
				t.Errorf("stack %q, want %q", n.Stack, c.stack)
			}
			if c.log != "" && !strings.Contains(log.String(), c.log) {
				t.Errorf("log %q lacks %q", log.String(), c.log)
			}
			if c.log == "" && log.Len() > 0 {
				t.Errorf("unexpected log: %q", log.String())
			}
		})
	}
}

func modeOf(n *sandbox.Network) string {
	if n == nil {
		return ""
	}
	return n.Mode
}

// Build code gets the network; a trusted creator (it pushes) does not,
// and build code's resolv.conf is the helper's, not the host's.
func TestBuildSpecsTakeTheNetwork(t *testing.T) {
	net := &sandbox.Network{Mode: NetworkIsolated, Stack: "/usr/bin/pasta"}
	h := &pulledHost{runtime: "/usr/bin/runc", network: net, dnsFiles: []string{resolvConf}, builder: &pull.Builder{Layers: []string{"/s/1"}}}
	detect := h.buildSpec(creator.Invocation{Path: "/cnb/lifecycle/detector"}, nil)
	if detect.Network != net {
		t.Errorf("detect runs on %+v, want its own network", detect.Network)
	}
	for _, b := range detect.Binds {
		if b.Path == resolvConf {
			t.Errorf("build code gets the host's %s in its own network", resolvConf)
		}
	}
	if creator := h.buildSpec(creator.Invocation{Path: "/cnb/lifecycle/creator", Trusted: true}, nil); creator.Network != nil {
		t.Errorf("a trusted creator runs on %+v, want the host's network (it pushes)", creator.Network)
	}
}

// In the builder cipack makes no network namespace: a --network the user
// gave is said to do nothing there, and no --network says nothing.
func TestInBuilderNetworkIsSaid(t *testing.T) {
	var log strings.Builder
	noteInBuilderNetwork("", &log)
	if log.Len() != 0 {
		t.Errorf("no --network: %q", log.String())
	}
	noteInBuilderNetwork(NetworkIsolated, &log)
	if !strings.Contains(log.String(), "--network isolated applies to pull mode only") {
		t.Errorf("--network isolated in the builder: %q", log.String())
	}
}
