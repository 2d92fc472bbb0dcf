package build

import (
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/pull"
	"github.com/cipack/cipack/internal/sandbox"
)

// What pull mode needs is checked before anything is pulled, each with
// its own exit code and a hint that names the way out.
func TestPulledHostChecksItsNeedsFirst(t *testing.T) {
	none := func(string) (string, error) { return "", errors.New("not found") }
	runc := func(n string) (string, error) {
		if n == "runc" {
			return "/usr/sbin/runc", nil
		}
		return "", errors.New("not found")
	}
	pinned := &debug.Module{Path: creator.Module, Version: "v0.21.0"}
	opts := Options{Builder: "reg.example/builder", LifecycleDir: t.TempDir()}
	for _, c := range []struct {
		name   string
		d      Deps
		opts   Options
		code   int
		reason string
	}{
		{"not root", Deps{Euid: 1000, LookPath: runc, Pinned: pinned}, opts, exit.Builder, "needs root"},
		{"no runtime", Deps{Euid: 0, LookPath: none, Pinned: pinned}, opts, exit.Sandbox, "install crun or runc"},
		{"no trusted lifecycle", Deps{Euid: 0, LookPath: runc, Pinned: pinned}, opts, exit.Builder, "--trust-builder"},
	} {
		_, err := newPulledHost(c.opts, c.d)
		if exit.Code(err) != c.code || !strings.Contains(err.Error(), c.reason) {
			t.Errorf("%s: %v (exit %d), want exit %d saying %q", c.name, err, exit.Code(err), c.code, c.reason)
		}
	}
	trusting := opts
	trusting.TrustBuilder = true
	h, err := newPulledHost(trusting, Deps{Euid: 0, LookPath: runc})
	if err != nil || h.runtime != "/usr/sbin/runc" || h.trusted != nil {
		t.Fatalf("--trust-builder: %+v %v", h, err)
	}
}

// A lifecycle that is not the pinned one is refused: a builder's own
// lifecycle copied next to cipack would be handed the credentials.
func TestTrustedLifecycleMustBeThePinnedModule(t *testing.T) {
	dir := t.TempDir()
	self, err := os.Executable() // a Go test binary: not the lifecycle
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"lifecycle", "launcher"} {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	_, err = creator.FindTrusted(dir, &debug.Module{Path: creator.Module, Version: "v0.21.0"})
	if exit.Code(err) != exit.Builder || !strings.Contains(err.Error(), "is built from") {
		t.Fatalf("a foreign binary as the trusted lifecycle: %v", err)
	}
	if _, err := creator.FindTrusted(dir, nil); exit.Code(err) != exit.Builder {
		t.Fatalf("no pinned module: %v", err)
	}
}

func TestBuildCodeIsNeverRootInPullMode(t *testing.T) {
	for _, ids := range [][2]int{{0, 1000}, {1000, 0}, {0, 0}, {sandbox.StackUID, 1000}, {1000, sandbox.StackUID}} {
		if _, _, err := buildUser(ids[0], ids[1]); exit.Code(err) != exit.Builder {
			t.Errorf("%v: %v", ids, err)
		}
	}
	if u, g, err := buildUser(1000, 1001); err != nil || u != 1000 || g != 1001 {
		t.Errorf("1000:1001: %d:%d %v", u, g, err)
	}
}

// The builder's CNB_* settings never reach the lifecycle (they would
// override the run image or API the user chose); the user's proxies, CA
// files and own CNB_* do, cipack's secrets and host paths do not.
func TestContainerEnv(t *testing.T) {
	got := builderEnv([]string{"PATH=/cnb/process:/bin", "CNB_USER_ID=1000", "CNB_RUN_IMAGE=evil", "CNB_PLATFORM_API=0.12", "CNB_STACK_ID=io.stack", "LANG=C"})
	if want := []string{"PATH=/cnb/process:/bin", "CNB_STACK_ID=io.stack", "LANG=C"}; !slices.Equal(got, want) {
		t.Errorf("builder env %v, want %v", got, want)
	}
	got = containerEnv([]string{"PATH=/usr/bin", "HOME=/root", "TMPDIR=/tmp/x", "HTTPS_PROXY=http://p:3128", "no_proxy=.corp",
		"SSL_CERT_FILE=/etc/corp-ca.pem", "CIPACK_REGISTRY_PASSWORD=pw", "GITHUB_TOKEN=ghs", "CNB_REGISTRY_AUTH={}", "CNB_EXPERIMENTAL_MODE=warn"})
	if want := []string{"HTTPS_PROXY=http://p:3128", "no_proxy=.corp", "SSL_CERT_FILE=/etc/corp-ca.pem", "CNB_EXPERIMENTAL_MODE=warn"}; !slices.Equal(got, want) {
		t.Errorf("container env %v, want %v", got, want)
	}
}

// Each phase gets the root it must: build code the builder's layers as
// the build user without capabilities or the cache; a credential phase
// a minimal root with the trusted lifecycle, the host's CA store and
// resolver, and the cache.
func TestPulledHostSpecs(t *testing.T) {
	h := &pulledHost{self: "/bin/cipack", runtime: "/usr/sbin/runc", builder: &pull.Builder{Layers: []string{"/s/1", "/s/2"}, Env: []string{"PATH=/bin", "CNB_RUN_IMAGE=x"}},
		trusted: &creator.Trusted{Lifecycle: "/opt/cipack/lifecycle", Launcher: "/opt/cipack/launcher"},
		uid:     1000, gid: 1001, dnsFiles: []string{"/etc/resolv.conf", "/etc/hosts"}, caFiles: []string{"/etc/ssl/certs"}, userCA: []string{"/opt/ca.pem"}}
	in := creator.CreateInputs{AppDir: "/tmp/app", LayersDir: "/tmp/layers", PlatformDir: "/tmp/platform", CacheDir: "/tmp/cache", RunToml: "/tmp/platform/run.toml"}
	h.retarget(&in)
	if in.AppDir != "/workspace" || in.LayersDir != "/layers" || in.PlatformDir != "/platform" || in.CacheDir != "/cache" || in.RunToml != "/platform/run.toml" {
		t.Fatalf("retarget: %+v", in)
	}
	build := h.buildSpec(creator.Invocation{Path: "/cnb/lifecycle/builder"}, []string{"CNB_PLATFORM_API=0.15"})
	if build.UID != 1000 || build.GID != 1001 || len(build.Caps) != 0 || !slices.Equal(build.Layers, h.builder.Layers) {
		t.Errorf("build phase: %+v", build)
	}
	if slices.Contains(build.Env, "CNB_RUN_IMAGE=x") || !slices.Contains(build.Env, "PATH=/bin") {
		t.Errorf("build phase env %v", build.Env)
	}
	hosts := func(s sandbox.Spec) []string {
		var out []string
		for _, b := range s.Binds {
			out = append(out, b.Host+">"+b.Path)
		}
		return out
	}
	if got, want := hosts(build), []string{"/tmp/app>/workspace", "/tmp/layers>/layers", "/tmp/platform>/platform", "/opt/ca.pem>/opt/ca.pem", "/etc/resolv.conf>/etc/resolv.conf"}; !slices.Equal(got, want) {
		t.Errorf("build binds %v, want %v", got, want)
	}
	export := h.trustedSpec(creator.Invocation{Path: "/cnb/lifecycle/exporter", Trusted: true}, nil)
	if export.UID != 0 || !slices.Equal(export.Caps, sandbox.TrustedCaps) || len(export.Layers) != 0 {
		t.Errorf("export phase: %+v", export)
	}
	if got := hosts(export); !slices.Contains(got, "/opt/cipack/lifecycle>/cnb/lifecycle/exporter") || !slices.Contains(got, "/opt/cipack/launcher>/cnb/lifecycle/launcher") ||
		!slices.Contains(got, "/tmp/cache>/cache") || !slices.Contains(got, "/etc/ssl/certs>/etc/ssl/certs") || !slices.Contains(got, "/etc/hosts>/etc/hosts") {
		t.Errorf("export binds %v", got)
	}
	for _, b := range export.Binds {
		if b.Path == "/platform" && !b.ReadOnly || strings.HasPrefix(b.Path, "/cnb/") && !b.ReadOnly {
			t.Errorf("bind %s is writable", b.Path)
		}
	}
}
