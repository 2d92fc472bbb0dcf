package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/lifecycle"
	"github.com/cipack/cipack/internal/registry"
)

// Deps are what a build needs from outside: a registry client, where logs
// go, and the facts about the process that only the edge may read.
type Deps struct {
	Registry *registry.Client
	Log      io.Writer
	Observer lifecycle.Observer
	// Environ is the environment the lifecycle inherits (PATH, HOME, …).
	Environ []string
	// BuilderUID and BuilderGID are the builder's CNB_USER_ID and
	// CNB_GROUP_ID (the step's environment when the step image is the
	// builder).
	BuilderUID, BuilderGID string
}

// Buildpack is one buildpack that took part in the build.
type Buildpack struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Result is what a successful build pushed.
type Result struct {
	Image       string                  `json:"image"`
	Digest      string                  `json:"digest"`
	ImageRef    string                  `json:"imageRef"`
	Tags        []string                `json:"tags"`
	PlatformAPI string                  `json:"platformAPI"`
	RunImage    string                  `json:"runImage"`
	Buildpacks  []Buildpack             `json:"buildpacks"`
	Phases      []lifecycle.PhaseTiming `json:"phases"`
	Duration    time.Duration           `json:"duration_ns"`
}

// Run performs one build. opts must have passed Validate.
func Run(ctx context.Context, opts Options, d Deps) (*Result, error) {
	start := time.Now()
	b, err := lifecycle.LoadBuilder(opts.CNBDir)
	if err != nil {
		return nil, err
	}
	if b.Extensions {
		return nil, exit.New(exit.Builder, b.Path("order.toml"), errors.New("the builder declares image extensions"),
			"cipack does not support image extensions yet: use a builder without [[order-extensions]]")
	}
	uid, err := pickID("--uid", "CNB_USER_ID", opts.UID, d.BuilderUID)
	if err != nil {
		return nil, err
	}
	gid, err := pickID("--gid", "CNB_GROUP_ID", opts.GID, d.BuilderGID)
	if err != nil {
		return nil, err
	}

	refs, err := preflight(ctx, d.Registry, opts, b)
	if err != nil {
		return nil, err
	}
	if len(b.DeclaredAPIs) == 0 {
		b.DeclaredAPIs = refs.builderAPIs
	}
	candidates, err := lifecycle.Candidates(opts.PlatformAPI, b)
	if err != nil {
		return nil, err
	}
	auth, err := d.Registry.AuthHeaders(ctx, refs.all()...)
	if err != nil {
		return nil, exit.New(exit.RegistryAuth, "registry credentials", err, "check DOCKER_CONFIG and CNB_REGISTRY_AUTH")
	}

	// The file first, so that --env entries, written after, win.
	platformDir, err := writePlatformDir(append(append([]string{}, opts.fileEnv...), opts.Env...))
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(platformDir)

	appDir, err := filepath.Abs(orDot(opts.AppPath))
	if err != nil {
		return nil, exit.Usagef("--path", "", "%v", err)
	}
	if err := handOver(appDir, uid, gid, d.Log); err != nil {
		return nil, err
	}
	layersDir, err := filepath.Abs(opts.LayersDir)
	if err != nil {
		return nil, exit.Usagef("--layers-dir", "", "%v", err)
	}
	if err := os.MkdirAll(layersDir, 0o755); err != nil {
		return nil, exit.Usagef("--layers-dir", "make it writable", "%v", err)
	}
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
			return nil, exit.Usagef("--cache-dir", "make it writable, or use --cache-image", "%v", err)
		}
	}
	reportPath := filepath.Join(layersDir, "report.toml")
	_ = os.Remove(reportPath) // a stale report must never pass for this build's

	in := lifecycle.CreateInputs{
		Image:         refs.image.String(),
		AppDir:        appDir,
		LayersDir:     layersDir,
		PlatformDir:   platformDir,
		ReportPath:    reportPath,
		CacheImage:    opts.CacheImage,
		CacheDir:      opts.CacheDir,
		PreviousImage: opts.PreviousImage,
		ProcessType:   opts.ProcessType,
		UID:           uid,
		GID:           gid,
		Insecure:      opts.Insecure,
		LogLevel:      opts.LogLevel,
	}
	for _, t := range refs.tags {
		in.Tags = append(in.Tags, t.String())
	}
	if opts.RunImage != "" {
		if in.RunToml, err = writeRunToml(platformDir, opts.RunImage); err != nil {
			return nil, err
		}
	}
	if len(auth) > 0 {
		in.RegistryAuth = registry.EncodeAuth(auth)
	}
	fmt.Fprintf(d.Log, "cipack: building %s as %d:%d (platform API: first of %v the lifecycle accepts)\n", refs.image, uid, gid, candidates)
	runner := &lifecycle.Runner{Log: d.Log, Observer: d.Observer, Environ: withoutCNB(d.Environ)}
	api, timings, err := runner.RunNegotiated(ctx, candidates, func(api string) lifecycle.Invocation {
		in.PlatformAPI = api
		return lifecycle.PlanCreate(b, in)
	})
	if err != nil {
		return nil, err
	}

	report, err := lifecycle.ReadReport(reportPath)
	if err != nil {
		return nil, exit.New(exit.Export, "export phase", err, "the lifecycle finished but wrote no report: check the builder's lifecycle version")
	}
	res := &Result{
		Image:       refs.image.String(),
		Digest:      report.Image.Digest,
		ImageRef:    refs.image.Context().Digest(report.Image.Digest).String(),
		Tags:        report.Image.Tags,
		PlatformAPI: api,
		RunImage:    refs.runImage.String(),
		Phases:      timings,
		Duration:    time.Since(start),
	}
	if group, err := files.NewHandler().ReadGroup(filepath.Join(layersDir, "group.toml")); err == nil {
		for _, bp := range group.Group {
			res.Buildpacks = append(res.Buildpacks, Buildpack{ID: bp.ID, Version: bp.Version})
		}
	}
	return res, nil
}

type preflightRefs struct {
	image    name.Reference
	tags     []name.Tag
	runImage name.Reference
	cache    name.Reference
	// builderAPIs are the platform APIs the --builder image's label lists.
	builderAPIs []string
}

func (p preflightRefs) all() []name.Reference {
	out := []name.Reference{p.image, p.runImage}
	for _, t := range p.tags {
		out = append(out, t)
	}
	if p.cache != nil {
		out = append(out, p.cache)
	}
	return out
}

// preflight checks, before the lifecycle starts, that the target and cache
// can be pushed, the run image read and (when named) the builder image
// read, so that bad credentials or a typo fail in seconds with nothing
// pushed.
func preflight(ctx context.Context, reg *registry.Client, opts Options, b *lifecycle.Builder) (preflightRefs, error) {
	var p preflightRefs
	var err error
	if p.image, err = reg.Parse(opts.Image); err != nil {
		return p, exit.Usagef("--image", "", "invalid image reference %q: %v", opts.Image, err)
	}
	for _, t := range opts.Tags {
		tag, err := ResolveTag(opts.Image, t)
		if err != nil {
			return p, err
		}
		p.tags = append(p.tags, tag)
	}
	runImage := opts.RunImage
	if runImage == "" {
		runImage = b.RunImage.Image
	}
	if runImage == "" {
		return p, exit.Usagef("--run-image", "pass --run-image: the builder has no run.toml or stack.toml", "no run image")
	}
	if p.runImage, err = reg.Parse(runImage); err != nil {
		return p, exit.Usagef("--run-image", "", "invalid run image reference %q: %v", runImage, err)
	}
	if opts.CacheImage != "" {
		if p.cache, err = reg.Parse(opts.CacheImage); err != nil {
			return p, exit.Usagef("--cache-image", "", "invalid cache image reference %q: %v", opts.CacheImage, err)
		}
	}

	pushRepos := map[string]name.Reference{p.image.Context().String(): p.image}
	inputOf := map[string]string{p.image.Context().String(): "--image"}
	for _, t := range p.tags {
		if _, dup := pushRepos[t.Context().String()]; !dup {
			pushRepos[t.Context().String()], inputOf[t.Context().String()] = t, "--tag"
		}
	}
	if p.cache != nil {
		pushRepos[p.cache.Context().String()], inputOf[p.cache.Context().String()] = p.cache, "--cache-image"
	}
	keys := make([]string, 0, len(pushRepos))
	for k := range pushRepos {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// At most a handful of checks (target, tags' repos, cache, run image,
	// builder): run them at once, report the first failure in a stable order.
	errs := make([]error, len(keys)+2)
	var wg sync.WaitGroup
	for i, k := range keys {
		wg.Go(func() { errs[i] = relabel(inputOf[k], reg.CheckPush(ctx, pushRepos[k])) })
	}
	wg.Go(func() {
		if _, err := reg.Head(ctx, p.runImage); err != nil {
			errs[len(keys)] = relabel("--run-image", err)
		}
	})
	if opts.Builder != "" {
		wg.Go(func() { p.builderAPIs, errs[len(keys)+1] = builderAPIs(ctx, reg, opts.Builder) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

// builderAPIs reads the platform APIs from the builder image's
// io.buildpacks.builder.metadata label (lifecycle.apis.platform.supported),
// where `pack builder create` records them.
func builderAPIs(ctx context.Context, reg *registry.Client, ref string) ([]string, error) {
	r, err := reg.Parse(ref)
	if err != nil {
		return nil, exit.Usagef("--builder", "", "invalid builder reference %q: %v", ref, err)
	}
	_, cf, err := reg.Config(ctx, r)
	if err != nil {
		return nil, relabel("--builder", err)
	}
	var md struct {
		Lifecycle struct {
			APIs struct {
				Platform struct {
					Supported []string `json:"supported"`
				} `json:"platform"`
			} `json:"apis"`
		} `json:"lifecycle"`
	}
	raw, ok := cf.Config.Labels["io.buildpacks.builder.metadata"]
	if !ok {
		return nil, exit.New(exit.Builder, "--builder", fmt.Errorf("%s has no io.buildpacks.builder.metadata label", ref), "name a CNB builder image")
	}
	if err := json.Unmarshal([]byte(raw), &md); err != nil {
		return nil, exit.New(exit.Builder, "--builder", fmt.Errorf("%s: malformed builder metadata: %w", ref, err), "name a CNB builder image")
	}
	return md.Lifecycle.APIs.Platform.Supported, nil
}

// relabel makes the input the subject of an error about an image, so CI
// reporters can name the input; the image stays in the message.
func relabel(input string, err error) error {
	var e *exit.Error
	if errors.As(err, &e) {
		return &exit.Error{Code: e.Code, Subject: input, Err: fmt.Errorf("%s: %w", e.Subject, e.Err), Hint: e.Hint}
	}
	return err
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
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, exit.Usagef(flag, "give a numeric id", "%s=%q is not a numeric id", envName, v)
	}
	return n, nil
}

// writePlatformDir writes one file per variable under env/, the contract
// buildpacks read; values are written verbatim, '=' and newlines included.
// The directory must be readable by the builder's user after the lifecycle
// drops privileges.
func writePlatformDir(env []string) (string, error) {
	dir, err := os.MkdirTemp("", "cipack-platform-")
	if err != nil {
		return "", fmt.Errorf("create platform dir: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "env"), 0o755); err != nil {
		return "", fmt.Errorf("create platform dir: %w", err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", fmt.Errorf("create platform dir: %w", err)
	}
	for _, e := range env {
		k, v, err := splitEnv("--env", e)
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(dir, "env", k), []byte(v), 0o644); err != nil {
			return "", fmt.Errorf("write platform env %s: %w", k, err)
		}
	}
	return dir, nil
}

// handOver gives the app directory to the build user when cipack runs as
// root and the directory belongs to someone else (a CI checkout made by
// root or by another uid): buildpacks run as the builder's user and often
// write into the app dir. As a non-root user cipack leaves it alone.
func handOver(dir string, uid, gid int, log io.Writer) error {
	if os.Geteuid() != 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return exit.Usagef("--path", "", "%v", err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	fmt.Fprintf(log, "cipack: giving %s to the build user %d:%d\n", dir, uid, gid)
	err = filepath.WalkDir(dir, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return exit.Usagef("--path", "make the app directory writable by root, or run cipack as the build user", "hand the app to the build user: %v", err)
	}
	return nil
}

// writeRunToml writes a run.toml naming the user's run image, so the image
// records that name (runImage.image) and later rebases watch it.
func writeRunToml(dir, image string) (string, error) {
	p := filepath.Join(dir, "run.toml")
	body := fmt.Sprintf("[[images]]\nimage = %q\n", image)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		return "", fmt.Errorf("write run.toml: %w", err)
	}
	return p, nil
}

// withoutCNB drops CNB_* variables inherited from the step so the
// lifecycle sees only what cipack planned (a stray CNB_PLATFORM_API or
// CNB_REGISTRY_AUTH would otherwise override the plan).
func withoutCNB(env []string) []string {
	out := make([]string, 0, len(env))
	for _, e := range env {
		if len(e) >= 4 && e[:4] == "CNB_" {
			continue
		}
		out = append(out, e)
	}
	return out
}

func orDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}
