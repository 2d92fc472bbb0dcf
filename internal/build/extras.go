package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/buildpacks/lifecycle/platform/files"

	"github.com/cipack/cipack/internal/buildpacks"
	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/project"
	"github.com/cipack/cipack/internal/pull"
	"github.com/cipack/cipack/internal/registry"
	"github.com/cipack/cipack/internal/sandbox"
	"github.com/cipack/cipack/internal/scratch"
)

// extraBuildpacks fetches the buildpacks the user added (--buildpack and
// its pre/post forms, else project.toml's groups), writes the order the
// lifecycle runs, and lays the extra buildpacks out for the host: a
// buildpacks dir of links and copies in the builder, binds in pull mode.
func (w *workdirs) extraBuildpacks(ctx context.Context, p *buildPlan, opts Options, d Deps) error {
	req := buildpacks.Request{
		Group:   flagSources("--buildpack", opts.Buildpacks, d.Cwd),
		Pre:     flagSources("--pre-buildpack", opts.PreBuildpacks, d.Cwd),
		Post:    flagSources("--post-buildpack", opts.PostBuildpacks, d.Cwd),
		ExecEnv: opts.ExecEnv,
		Target:  files.TargetMetadata{OS: runtime.GOOS, Arch: runtime.GOARCH},
	}
	// As pack: each flag replaces the descriptor's list of its kind.
	if p.desc != nil {
		root := p.appDir
		if opts.Descriptor != "" {
			root = "" // the user's own file, not the app's
		}
		if len(req.Group) == 0 {
			req.Group = descSources(p.desc, p.desc.Group, root)
		}
		if len(req.Pre) == 0 {
			req.Pre = descSources(p.desc, p.desc.Pre, root)
		}
		if len(req.Post) == 0 {
			req.Post = descSources(p.desc, p.desc.Post, root)
		}
	}
	if req.Empty() {
		return nil
	}
	if len(req.Group) > 0 && len(req.Pre)+len(req.Post) > 0 {
		fmt.Fprintf(d.Log, "cipack: warning: the pre and post buildpacks are not used: a group replaces the builder's order (as in pack)\n")
	}
	var err error
	if req.Builder, err = builderBuildpacks(p); err != nil {
		return err
	}
	if req.Work, err = scratch.Dir(d.TempDir, "cipack-buildpacks-"); err != nil {
		return err
	}
	w.undo = append(w.undo, func() { _ = os.RemoveAll(req.Work) })
	// In pull mode only the runtime (root) reads it, to bind what is in
	// it; in the builder the build user reads through it.
	mode := os.FileMode(0o700)
	if p.host == nil {
		mode = 0o755
	}
	if err := os.Chmod(req.Work, mode); err != nil {
		return err
	}
	plan, err := buildpacks.Resolve(ctx, req, packageFetcher{reg: d.Registry, store: opts.BuilderCache})
	if err != nil {
		return err
	}
	for _, m := range plan.Extra {
		w.extra = append(w.extra, m.Dir)
		w.extraIDs = append(w.extraIDs, m.ID+"@"+m.Version)
		fmt.Fprintf(d.Log, "cipack: buildpack %s@%s (API %s) from %s\n", m.ID, m.Version, m.API, m.From)
		if req.Builder.Has(m.ID, m.Version) {
			fmt.Fprintf(d.Log, "cipack: warning: %s@%s from %s replaces the builder's buildpack of the same id and version\n", m.ID, m.Version, m.From)
		}
	}
	if plan.Order != nil {
		w.detectOrder = plan.Order
		w.order = filepath.Join(w.platform, "order.toml")
		if err := buildpacks.WriteOrder(w.order, plan.Order); err != nil {
			return err
		}
	}
	if p.host != nil {
		// The builder's layers stay as they are: each extra buildpack is
		// bound read-only where the lifecycle looks for it.
		for _, m := range plan.Extra {
			p.host.extra = append(p.host.extra, sandbox.Bind{Host: m.Dir, Path: m.Path(p.builder.Path("buildpacks")), ReadOnly: true})
		}
		return nil
	}
	if len(plan.Extra) == 0 {
		return nil
	}
	w.buildpacks = req.Work
	return buildpacks.LinkBuilder(req.Work, p.builder.Path("buildpacks"), req.Builder.Versions)
}

// builderBuildpacks is what the plan needs of the builder: its order,
// its buildpacks (the image's label in pull mode, its directory in the
// builder) and its lifecycle's Buildpack APIs.
func builderBuildpacks(p *buildPlan) (buildpacks.Builder, error) {
	b := buildpacks.Builder{APIs: p.builder.BuildpackAPIs}
	raw, err := p.files.ReadFile(p.builder.Path("order.toml"))
	if err == nil {
		if b.Order, err = buildpacks.ReadOrder(raw); err != nil {
			return b, exit.New(exit.Builder, p.builder.Path("order.toml"), err, "the builder's order.toml is malformed")
		}
	}
	if p.host != nil {
		var labels map[string]string
		if p.host.builder != nil {
			labels = p.host.builder.Labels
		}
		b.Versions, err = cnb.BuildpackLayers(labels)
		if b.Versions == nil {
			b.Versions = map[string][]string{}
		}
		// pack's builders have no lifecycle.toml: the label lists the APIs.
		if md, mdErr := cnb.Builder(labels); len(b.APIs) == 0 && mdErr == nil && md != nil {
			b.APIs = md.Lifecycle.APIs.Buildpack.Supported
		}
	} else {
		b.Versions, err = buildpacks.VersionsInDir(p.builder.Path("buildpacks"))
	}
	if err != nil {
		return b, exit.New(exit.Builder, "builder buildpacks", err, "use a builder made by pack builder create")
	}
	return b, nil
}

func flagSources(flag string, values []string, cwd string) []buildpacks.Source {
	var out []buildpacks.Source
	for _, v := range values {
		out = append(out, buildpacks.Source{Raw: v, Input: flag, Base: cwd})
	}
	return out
}

// descSources turns project.toml entries into sources; root confines
// their paths to the app (empty: not confined).
func descSources(d *project.Descriptor, bps []project.Buildpack, root string) []buildpacks.Source {
	var out []buildpacks.Source
	for _, bp := range bps {
		s := buildpacks.Source{Raw: bp.URI, Input: d.Path, Base: d.Dir, Root: root, ID: bp.ID, Version: bp.Version, ExecEnv: bp.ExecEnv}
		if bp.Script.Inline != "" {
			s.Script = &buildpacks.Script{API: bp.Script.API, Inline: bp.Script.Inline, Shell: bp.Script.Shell}
		}
		out = append(out, s)
	}
	return out
}

// packageFetcher pulls buildpackage images through the verified layer
// store pull mode keeps its builders in.
type packageFetcher struct {
	reg   *registry.Client
	store string
}

func (f packageFetcher) Fetch(ctx context.Context, ref string, fromApp bool) (*buildpacks.Package, error) {
	if _, err := f.reg.Parse(ref); err != nil {
		return nil, exit.Usagef("--buildpack", "use a reference like registry.example/team/buildpack:tag", "invalid buildpackage reference %q: %v", ref, err)
	}
	reg := f.reg
	if fromApp {
		reg = reg.Anonymous()
	}
	pulled, err := pull.Prepare(ctx, reg, ref, f.store)
	if err != nil {
		return nil, fmt.Errorf("buildpackage %s: %w", ref, err)
	}
	return &buildpacks.Package{Ref: pulled.Ref, Layers: pulled.Layers, Labels: pulled.Labels}, nil
}
