package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/project"
	"github.com/cipack/cipack/internal/pull"
	"github.com/cipack/cipack/internal/registry"
)

// buildPlan is what the plan stage decided: nothing on disk yet.
type buildPlan struct {
	builder *creator.Builder
	// files reads the builder's files: this filesystem, or the pulled
	// layers.
	files creator.Files
	// host is the pulled builder's host; nil: in-builder (chosen once the
	// app's path is known).
	host     *pulledHost
	uid, gid int
	refs     preflightRefs
	// staging is the one tag the lifecycle writes (see stage.go).
	staging    name.Tag
	candidates []string
	auth       string
	appDir     string
	desc       *project.Descriptor
	// registries waits for the registry checks plan started and returns
	// their error: refs, candidates and auth are set once it returns nil.
	registries func() error
}

// plan loads the builder, picks the build user, checks the registries and
// reads the project descriptor: every failure here leaves nothing behind.
func plan(ctx context.Context, opts Options, d Deps) (*buildPlan, error) {
	p := &buildPlan{files: creator.LocalFiles{}}
	var err error
	if PullMode(opts) {
		if err = p.pullBuilder(ctx, opts, &d); err != nil {
			return nil, err
		}
	} else if p.builder, err = creator.LoadBuilder(opts.CNBDir); err != nil {
		return nil, err
	} else {
		noteInBuilderNetwork(opts.Network, d.Log)
	}
	if p.builder.Extensions {
		return nil, exit.New(exit.Builder, p.builder.Path("order.toml"), errors.New("the builder declares image extensions"),
			"cipack does not support image extensions yet: use a builder without [[order-extensions]]")
	}
	if p.uid, err = pickID("--uid", "CNB_USER_ID", opts.UID, d.BuilderUID); err != nil {
		return nil, err
	}
	if p.gid, err = pickID("--gid", "CNB_GROUP_ID", opts.GID, d.BuilderGID); err != nil {
		return nil, err
	}
	if p.host != nil {
		if p.host.uid, p.host.gid, err = buildUser(p.uid, p.gid); err != nil {
			return nil, err
		}
	}
	// The registry checks are network round trips: they run while the app
	// is resolved and prepared, and everything that needs their answers
	// waits for them (registries). Their failure wins over a later one.
	checked := make(chan error, 1)
	go func() { checked <- p.checkRegistries(ctx, opts, d) }()
	p.registries = sync.OnceValue(func() error { return <-checked })
	if p.appDir, err = ResolveApp(opts.AppPath, opts.SourceRoot); err == nil {
		p.desc, err = loadDescriptor(opts, p.appDir, d.Log)
	}
	if rerr := p.checked(); err != nil && rerr != nil {
		return nil, rerr
	}
	return p, err
}

// pullBuilder makes the pulled host: its checks first (root, a runtime,
// the trusted lifecycle), then the builder resolved and unpacked.
func (p *buildPlan) pullBuilder(ctx context.Context, opts Options, d *Deps) error {
	var err error
	if p.host, err = newPulledHost(opts, *d); err != nil {
		return err
	}
	t := time.Now()
	pulled, err := pull.PrepareWith(ctx, builderRegistry(opts, *d), opts.Builder, opts.BuilderCache, pull.Blobs(opts.BuilderBlobs))
	if err != nil {
		return err
	}
	for _, why := range pulled.Repaired {
		fmt.Fprintf(d.Log, "cipack: builder store: %s\n", why)
	}
	fmt.Fprintf(d.Log, "cipack: builder %s: %d layers, %d unpacked, %d cached and verified in %s (%s)\n", pulled.Ref, len(pulled.Layers), pulled.Unpacked,
		len(pulled.Layers)-pulled.Unpacked, opts.BuilderCache, time.Since(t).Round(time.Millisecond))
	p.files = pull.Files(pulled.Layers)
	if p.builder, err = creator.LoadBuilderFrom("/cnb", p.files); err != nil {
		return err
	}
	// The image's own user: a step's CNB_USER_ID is not the builder's.
	d.BuilderUID, d.BuilderGID = pulled.UID, pulled.GID
	p.host.builder = pulled
	return nil
}

// builderRegistry reads the builder: without the user's credentials when
// the app named it (a pull request could name a private image).
func builderRegistry(opts Options, d Deps) *registry.Client {
	if opts.BuilderFromApp {
		return d.Registry.Anonymous()
	}
	return d.Registry
}

// checkRegistries runs the preflight, settles the platform API candidates
// and the lifecycle's credentials.
func (p *buildPlan) checkRegistries(ctx context.Context, opts Options, d Deps) error {
	var err error
	if p.refs, err = preflight(ctx, d.Registry, builderRegistry(opts, d), opts, p.builder); err != nil {
		return err
	}
	if len(p.builder.DeclaredAPIs) == 0 {
		p.builder.DeclaredAPIs = p.refs.builderAPIs
	}
	if p.candidates, err = creator.Candidates(opts.PlatformAPI, p.builder); err != nil {
		return err
	}
	var images []string
	for _, r := range p.refs.all() {
		images = append(images, r.String())
	}
	if opts.PreviousImage != "" {
		images = append(images, opts.PreviousImage)
	}
	if p.auth, err = d.Registry.LifecycleAuth(images...); err != nil {
		return exit.New(exit.RegistryAuth, "registry credentials", err, "check DOCKER_CONFIG and CNB_REGISTRY_AUTH")
	}
	if p.auth == "{}" {
		p.auth = ""
	}
	return nil
}

func pickID(flag, envName, given, builder string) (int, error) {
	v := given
	if v == "" {
		v = builder
	}
	if v == "" {
		return 0, exit.New(exit.Builder, flag, fmt.Errorf("the builder sets no %s", envName),
			fmt.Sprintf("run in the builder image (it sets %s), or pass %s", envName, flag))
	}
	n, ok := parseID(v)
	if !ok {
		return 0, exit.Usagef(flag, "give a numeric id from 0 to 4294967294", "%s=%q is not a user or group id", envName, v)
	}
	return n, nil
}

// loadDescriptor reads the app's project.toml (or --descriptor) and says
// which of its keys cipack does not apply.
func loadDescriptor(opts Options, appDir string, log io.Writer) (*project.Descriptor, error) {
	p, required := opts.Descriptor, opts.Descriptor != ""
	if !required {
		p = filepath.Join(appDir, "project.toml")
	}
	d, err := project.Load(p, required)
	if err != nil || d == nil {
		return nil, err
	}
	for _, k := range d.Unsupported {
		fmt.Fprintf(log, "cipack: warning: %s: %s is not supported by cipack and is ignored\n", d.Path, k)
	}
	return d, nil
}

// DescriptorBuilder takes the builder from project.toml's [io.buildpacks]
// builder when none is given and this host has no lifecycle of its own
// (so the build pulls one), as pack does; an explicit --builder wins. It
// returns the descriptor's path when it set o.Builder.
func DescriptorBuilder(o *Options) string {
	if o.Builder != "" || o.Mode == ModeInBuilder {
		return ""
	}
	if _, err := os.Stat(filepath.Join(o.CNBDir, "lifecycle", "creator")); err == nil && o.Mode != ModePull {
		return ""
	}
	app, err := ResolveApp(o.AppPath, o.SourceRoot)
	if err != nil {
		return "" // Validate names the input
	}
	d, err := loadDescriptor(*o, app, io.Discard)
	if err != nil || d == nil || d.Builder == "" {
		return "" // plan reports a bad descriptor
	}
	o.Builder, o.BuilderFromApp = d.Builder, o.Descriptor == ""
	return d.Path
}

// checked waits for the registry checks (none were started: nil).
func (p *buildPlan) checked() error {
	if p.registries == nil {
		return nil
	}
	return p.registries()
}
