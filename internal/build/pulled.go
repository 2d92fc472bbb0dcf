package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/pull"
	"github.com/cipack/cipack/internal/sandbox"
)

// pulledHost runs the lifecycle of a pulled builder in containers. Build
// code (detect, build, or the whole creator of a trusted builder) runs
// in the builder's layers as the build user; the credential phases run
// the lifecycle cipack trusts in a minimal root that holds nothing of
// the builder but the build's own directories.
type pulledHost struct {
	self, runtime string
	builder       *pull.Builder
	// trusted is nil for a builder the user trusts (--trust-builder):
	// its own creator then runs everything, credentials included.
	trusted *creator.Trusted
	// binds are the build's directories: app, layers, platform, cache,
	// analyzed.toml's and report.toml's.
	app, layers, platform, cache, analyzed, report string
	uid, gid                                       uint32
	// dnsFiles, caFiles and userCA are host files the containers get
	// read-only: the resolver's config, the system CA store, and what
	// SSL_CERT_FILE and SSL_CERT_DIR name (a proxy's CA, often).
	dnsFiles, caFiles, userCA []string
	// extra binds the user's buildpacks where the builder's lifecycle
	// looks for them, read-only.
	extra []sandbox.Bind
	// sbomOut: the SBOM files will be copied out (--sbom-dir), so their
	// bounds are checked before export.
	sbomOut bool
	// network is build code's own network namespace; nil: the host's.
	network *sandbox.Network
	// names names buildpacks by their layers dir, for refusals.
	names buildpackNames
	// expect is where analyzed.toml's images must be.
	expect analyzedRepos
}

// Sandbox paths: the fixed places pack and kpack give the build.
const (
	sbApp, sbLayers, sbPlatform, sbCache, sbAnalyzed = "/workspace", "/layers", "/platform", "/cache", "/analyzed"
	sbReport                                         = "/report"
)

// retarget points in's host paths at the sandbox's fixed ones.
func (h *pulledHost) retarget(in *creator.CreateInputs) {
	h.app, h.layers, h.platform = in.AppDir, in.LayersDir, in.PlatformDir
	in.AppDir, in.LayersDir, in.PlatformDir = sbApp, sbLayers, sbPlatform
	if dir := filepath.Dir(in.ReportPath); dir != h.layers {
		// The split's report dir: only the exporter's container has it.
		h.report, in.ReportPath = dir, sbReport+"/report.toml"
	} else {
		in.ReportPath = sbLayers + "/report.toml"
	}
	if in.RunToml != "" {
		in.RunToml = sbPlatform + "/" + filepath.Base(in.RunToml)
	}
	if in.Order != "" {
		in.Order = sbPlatform + "/" + filepath.Base(in.Order)
	}
	if in.CacheDir != "" {
		h.cache, in.CacheDir = in.CacheDir, sbCache
	}
	if in.AnalyzedPath != "" {
		h.analyzed, in.AnalyzedPath = filepath.Dir(in.AnalyzedPath), sbAnalyzed+"/analyzed.toml"
	}
}

// wrap is the runner's Wrap: one container per invocation.
func (h *pulledHost) wrap(inv creator.Invocation, env []string) (*exec.Cmd, func(int) error, error) {
	spec := h.buildSpec(inv, env)
	if inv.Trusted && h.trusted != nil {
		spec = h.trustedSpec(inv, env)
	}
	cmd, cleanup, err := sandbox.Wrap(h.self, spec)
	if err != nil {
		return nil, nil, err
	}
	done := func(code int) error {
		cleanup()
		if code == sandbox.SetupFailed {
			return errors.New("the sandbox could not be made")
		}
		return nil
	}
	return cmd, done, nil
}

// buildSpec runs inv in the builder's layers. Detect and build run as
// the build user with no capability; a trusted builder's creator starts
// as root (it owns the layers for the build user, then drops to it, and
// the kernel clears its capabilities when it does).
func (h *pulledHost) buildSpec(inv creator.Invocation, env []string) sandbox.Spec {
	binds := h.buildBinds(inv.Trusted)
	spec := sandbox.Spec{Runtime: h.runtime, Layers: h.builder.Layers, Binds: binds,
		Argv: append([]string{inv.Path}, inv.Args...), Env: append(builderEnv(h.builder.Env), env...), Dir: sbApp,
		UID: h.uid, GID: h.gid}
	if inv.Trusted {
		spec.UID, spec.GID, spec.Caps = 0, 0, sandbox.TrustedCaps
	} else {
		spec.Network = h.network // a trusted creator pushes: host network
	}
	return spec
}

func (h *pulledHost) buildBinds(withCache bool) []sandbox.Bind {
	binds := []sandbox.Bind{{Host: h.app, Path: sbApp}, {Host: h.layers, Path: sbLayers}, {Host: h.platform, Path: sbPlatform, ReadOnly: true}}
	binds = append(binds, h.extra...)
	if withCache && h.cache != "" {
		binds = append(binds, sandbox.Bind{Host: h.cache, Path: sbCache})
	}
	if h.analyzed != "" {
		// Read-only: analyzed.toml names the run and previous images the
		// credential phases read; build code must not choose them.
		binds = append(binds, sandbox.Bind{Host: h.analyzed, Path: sbAnalyzed, ReadOnly: true})
	}
	// Build code keeps the builder's own hosts file and CA store: only
	// the resolver and the CA the user named come from the host.
	shared := slices.Clone(h.userCA)
	if slices.Contains(h.dnsFiles, resolvConf) && h.network == nil { // else the helper writes one
		shared = append(shared, resolvConf)
	}
	for _, f := range shared {
		binds = append(binds, sandbox.Bind{Host: f, Path: f, ReadOnly: true})
	}
	return binds
}

// trustedSpec runs a credential phase with the lifecycle cipack pins, in
// a root that has nothing of the builder: a hostile builder's CA
// certificates, hosts file or binaries never meet the credentials.
func (h *pulledHost) trustedSpec(inv creator.Invocation, env []string) sandbox.Spec {
	lc := filepath.Dir(inv.Path)
	binds := []sandbox.Bind{
		{Host: h.trusted.Lifecycle, Path: inv.Path, ReadOnly: true},
		{Host: h.trusted.Launcher, Path: filepath.Join(lc, "launcher"), ReadOnly: true},
		{Host: h.app, Path: sbApp}, {Host: h.layers, Path: sbLayers}, {Host: h.platform, Path: sbPlatform, ReadOnly: true},
	}
	if h.cache != "" {
		binds = append(binds, sandbox.Bind{Host: h.cache, Path: sbCache})
	}
	if h.analyzed != "" {
		// The exporter only reads it (cipack made it root's before export).
		binds = append(binds, sandbox.Bind{Host: h.analyzed, Path: sbAnalyzed, ReadOnly: inv.Phase == phaseExport})
	}
	if h.report != "" && inv.Phase == phaseExport {
		binds = append(binds, sandbox.Bind{Host: h.report, Path: sbReport})
	}
	for _, f := range slices.Concat(h.dnsFiles, h.caFiles, h.userCA) {
		binds = append(binds, sandbox.Bind{Host: f, Path: f, ReadOnly: true})
	}
	base := []string{"PATH=" + lc, "HOME=/tmp"}
	return sandbox.Spec{Runtime: h.runtime, Binds: binds, Argv: append([]string{inv.Path}, inv.Args...),
		Env: append(base, env...), Dir: sbApp, Caps: sandbox.TrustedCaps}
}

// resolvConf is the one host DNS file build code gets too.
const resolvConf = "/etc/resolv.conf"

// findHostFiles fills in the host files the containers get read-only.
func (h *pulledHost) findHostFiles(env []string) {
	exists := func(p string) bool { _, err := os.Stat(p); return err == nil }
	for _, p := range []string{resolvConf, "/etc/hosts", "/etc/nsswitch.conf"} {
		if exists(p) {
			h.dnsFiles = append(h.dnsFiles, p)
		}
	}
	// The CA stores Go's TLS reads (crypto/x509's Linux lists), not all
	// of /etc/ssl: its private/ dir has no business in a container.
	for _, p := range []string{"/etc/ssl/certs", "/etc/ssl/cert.pem", "/etc/ssl/ca-bundle.pem", "/etc/pki/tls/certs",
		"/etc/pki/tls/cacert.pem", "/etc/pki/ca-trust/extracted/pem", "/usr/share/ca-certificates", "/usr/local/share/ca-certificates"} {
		if exists(p) {
			h.caFiles = append(h.caFiles, p)
		}
	}
	for _, e := range env {
		k, v, _ := strings.Cut(e, "=")
		if (k == "SSL_CERT_FILE" || k == "SSL_CERT_DIR") && filepath.IsAbs(v) && exists(v) {
			h.userCA = append(h.userCA, filepath.Clean(v))
		}
	}
}

// builderEnv is the builder image's Env minus the CNB_* variables: the
// lifecycle reads those as defaults of its flags (CNB_RUN_IMAGE would
// override the run image the user chose, CNB_PLATFORM_API the API), and
// cipack passes every such choice itself. CNB_STACK_ID stays: older
// buildpacks read it.
func builderEnv(env []string) []string {
	out := make([]string, 0, len(env))
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); strings.HasPrefix(k, "CNB_") && k != "CNB_STACK_ID" {
			continue
		}
		out = append(out, e)
	}
	return out
}

// containerEnv is what the containers take from cipack's environment:
// proxies, CA files, locale and the user's own CNB_* settings, never
// cipack's PATH, HOME or secrets.
func containerEnv(env []string) []string {
	out := []string{}
	for _, e := range lifecycleEnv(env) {
		switch k, _, _ := strings.Cut(e, "="); k {
		case "PATH", "HOME", "USER", "HOSTNAME", "TMPDIR":
		default:
			out = append(out, e)
		}
	}
	return out
}

// buildUser checks the user build code runs as in pull mode: never root,
// since uid 0 in the container is root on the host's files it can reach.
func buildUser(uid, gid int) (uint32, uint32, error) {
	if uid == 0 || gid == 0 {
		return 0, 0, exit.New(exit.Builder, "--builder", fmt.Errorf("the build would run as %d:%d: root", uid, gid),
			"use a builder whose CNB_USER_ID and CNB_GROUP_ID are not 0, or pass --uid and --gid: pull mode never runs build code as root")
	}
	if uid == sandbox.StackUID || gid == sandbox.StackUID {
		// The network stack runs as that uid: build code must not own it.
		return 0, 0, exit.New(exit.Builder, "--builder", fmt.Errorf("the build would run as %d:%d, the uid cipack's network stack runs as", uid, gid),
			"use a builder whose CNB_USER_ID and CNB_GROUP_ID are ordinary ids, or pass --uid and --gid")
	}
	return uint32(uid), uint32(gid), nil
}

// newPulledHost checks, before anything is pulled, what pull mode needs:
// root, an OCI runtime, and (unless the builder is trusted) the lifecycle
// cipack trusts with the credentials.
func newPulledHost(opts Options, d Deps) (*pulledHost, error) {
	if d.Euid != 0 {
		return nil, exit.New(exit.Builder, "--builder", fmt.Errorf("pull mode (no builder at %s) needs root: it runs the builder in containers", opts.CNBDir),
			"run cipack as root, or as a user with passwordless sudo (GitHub-hosted runners have it), or run the step in the builder image")
	}
	rt, err := sandbox.FindRuntime(d.LookPath, opts.Runtime)
	if err != nil {
		return nil, exit.New(exit.Sandbox, "--oci-runtime", err,
			"install crun or runc (Debian and Ubuntu: apt-get install crun; GitHub's hosted runners have runc), or run the step in the builder image")
	}
	h := &pulledHost{self: d.Self, runtime: rt, sbomOut: opts.SBOMDir != ""}
	if h.network, err = chooseNetwork(opts, d.LookPath, d.Environ, d.Log); err != nil {
		return nil, err
	}
	if !opts.TrustBuilder {
		if h.trusted, err = creator.FindTrusted(opts.LifecycleDir, d.Pinned); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// setup runs every phase in a container: the host's paths become the
// sandbox's fixed ones, and the containers get only the env they need.
func (h *pulledHost) setup(in *creator.CreateInputs, r *creator.Runner, d Deps) (func(), error) {
	r.Environ = containerEnv(d.Environ)
	h.findHostFiles(d.Environ)
	h.retarget(in)
	r.Wrap = h.wrap
	return func() {}, nil
}

// execute runs a trusted builder's creator in one container, else the
// five phases one by one, the credential phases apart from build code.
func (h *pulledHost) execute(ctx context.Context, r *creator.Runner, b *creator.Builder, in creator.CreateInputs, candidates []string) (string, []creator.PhaseTiming, error) {
	if h.trusted == nil {
		// The builder is trusted: its creator holds the credentials and
		// starts as root (it drops to the build user for build code).
		return r.RunNegotiated(ctx, candidates, func(api string) creator.Invocation {
			in.PlatformAPI = api
			inv := creator.PlanCreate(b, in)
			inv.Trusted = true
			return inv
		})
	}
	api := candidates[0]
	if len(candidates) > 1 {
		// The builder declares no APIs: ask its detector, which exits 11
		// for one it does not speak.
		var err error
		api, _, err = r.RunNegotiated(ctx, candidates, func(api string) creator.Invocation {
			return creator.Invocation{Path: b.Path("lifecycle", "detector"), Args: []string{"-version"}, Env: []string{"CNB_PLATFORM_API=" + api}}
		})
		if err != nil {
			return "", nil, err
		}
	}
	in.PlatformAPI = api
	// Between phases no build process runs: what build code left in the
	// layers dir is checked before a credential phase reads or writes
	// through it (before export: and before anything is pushed).
	r.Before = h.beforeTrusted
	timings, err := r.RunPhases(ctx, creator.PlanPhases(b, in))
	return api, timings, err
}
