package build

import (
	"context"
	"runtime/debug"

	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/lifecycle"
	"github.com/cipack/cipack/internal/project"
	"github.com/cipack/cipack/internal/pull"
	"github.com/cipack/cipack/internal/registry"
	"github.com/cipack/cipack/internal/safefs"
	"github.com/cipack/cipack/internal/sandbox"
	"github.com/cipack/cipack/internal/scratch"
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
	// Self is cipack's own executable (the sandbox helper), Euid the
	// process's effective uid.
	Self string
	Euid int
	// LookPath finds the OCI runtime; Pinned is the lifecycle module
	// cipack is built with (what the trusted lifecycle must match).
	LookPath func(string) (string, error)
	Pinned   *debug.Module
}

// Buildpack is one buildpack that took part in the build.
type Buildpack struct {
	ID      string `json:"id"`
	Version string `json:"version"`
}

// Result is what a successful build pushed.
type Result struct {
	Image string `json:"image"`
	// Name is the image without tag or digest: an attestation's subject.
	Name        string   `json:"name"`
	Digest      string   `json:"digest"`
	SBOMDir     string   `json:"sbomDir,omitempty"`
	ImageRef    string   `json:"imageRef"`
	Tags        []string `json:"tags"`
	PlatformAPI string   `json:"platformAPI"`
	RunImage    string   `json:"runImage"`
	// Platform is os/arch of the image: the lifecycle builds for the
	// platform it runs on. A multi-arch merge takes it from each job.
	Platform   string                  `json:"platform"`
	Buildpacks []Buildpack             `json:"buildpacks"`
	Phases     []lifecycle.PhaseTiming `json:"phases"`
	Duration   time.Duration           `json:"duration_ns"`
}

// Run performs one build. opts must have passed Validate.
func Run(ctx context.Context, opts Options, d Deps) (*Result, error) {
	start := time.Now()
	var pulled *pull.Builder
	var b *lifecycle.Builder
	var err error
	var host *pulledHost
	if PullMode(opts) {
		if host, err = newPulledHost(opts, d); err != nil {
			return nil, err
		}
		t := time.Now()
		if pulled, err = pull.Prepare(ctx, d.Registry, opts.Builder, opts.BuilderCache); err != nil {
			return nil, err
		}
		fmt.Fprintf(d.Log, "cipack: builder %s: %d layers, %d unpacked, %d cached in %s (%s)\n", pulled.Ref, len(pulled.Layers), pulled.Unpacked,
			len(pulled.Layers)-pulled.Unpacked, opts.BuilderCache, time.Since(t).Round(time.Millisecond))
		if b, err = lifecycle.LoadBuilderFrom("/cnb", pull.Files(pulled.Layers)); err != nil {
			return nil, err
		}
		d.BuilderUID, d.BuilderGID = pulled.UID, pulled.GID
		host.builder = pulled
	} else if b, err = lifecycle.LoadBuilder(opts.CNBDir); err != nil {
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
	if host != nil {
		if host.uid, host.gid, err = buildUser(uid, gid); err != nil {
			return nil, err
		}
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
	var images []string
	for _, r := range refs.all() {
		images = append(images, r.String())
	}
	if opts.PreviousImage != "" {
		images = append(images, opts.PreviousImage)
	}
	auth, err := d.Registry.LifecycleAuth(images...)
	if err != nil {
		return nil, exit.New(exit.RegistryAuth, "registry credentials", err, "check DOCKER_CONFIG and CNB_REGISTRY_AUTH")
	}

	appDir, err := ResolveApp(opts.AppPath, opts.SourceRoot)
	if err != nil {
		return nil, err
	}
	desc, err := loadDescriptor(opts, appDir, d.Log)
	if err != nil {
		return nil, err
	}
	// project.toml first, then the env files, then --env: later ones win.
	var descEnv []string
	if desc != nil {
		descEnv = desc.Env
	}
	platformDir, err := writePlatformDir(append(append(append([]string{}, descEnv...), opts.fileEnv...), opts.Env...), uid, gid)
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(platformDir)

	var orderPath string
	if desc != nil && len(desc.Group) > 0 {
		fsys := lifecycle.Files(lifecycle.LocalFiles{})
		if pulled != nil {
			fsys = pull.Files(pulled.Layers)
		}
		if orderPath, err = writeOrder(platformDir, b, fsys, desc); err != nil {
			return nil, err
		}
	}
	appDir, cleanupApp, err := prepareApp(appDir, desc, uid, gid, d.Euid == 0, d.Log)
	if err != nil {
		return nil, err
	}
	defer cleanupApp()
	layersDir, err := filepath.Abs(opts.LayersDir)
	if err != nil {
		return nil, exit.Usagef("--layers-dir", "", "%v", err)
	}
	if pulled != nil {
		// A fresh layers dir on the host, bound at /layers in the sandbox.
		if layersDir, err = scratch.Dir("cipack-layers-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(layersDir)
		// The exported image records /layers' mode: the same as in-builder.
		if err := os.Chmod(layersDir, 0o755); err != nil {
			return nil, err
		}
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
	if err := writeProjectMetadata(layersDir, opts.SourceRepository, opts.SourceCommit); err != nil {
		return nil, err
	}

	in := lifecycle.CreateInputs{
		Order:         orderPath,
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
	if opts.RunImage != "" || host != nil {
		// Pull mode always writes one: the trusted phases run in a root
		// without the builder's files.
		if in.RunToml, err = writeRunToml(platformDir, opts.RunImage, b.RunImage); err != nil {
			return nil, err
		}
	}
	if auth != "{}" {
		in.RegistryAuth = auth
	}
	if os.Geteuid() != 0 && in.RegistryAuth != "" {
		fmt.Fprintf(d.Log, "cipack: warning: cipack runs as uid %d, not root, so the lifecycle cannot drop privileges before build code runs: "+
			"buildpacks run as the same user and could read the registry credentials from the lifecycle's environment. "+
			"Run the step as root (GitHub: container options: --user 0; Tekton: securityContext.runAsUser: 0): cipack then runs buildpacks as %d:%d with no access to them.\n",
			os.Geteuid(), uid, gid)
	}
	fmt.Fprintf(d.Log, "cipack: building %s as %d:%d (platform API: first of %v the lifecycle accepts)\n", refs.image, uid, gid, candidates)
	runner := &lifecycle.Runner{Log: d.Log, Observer: d.Observer, Environ: lifecycleEnv(d.Environ)}
	if host != nil {
		runner.Environ = containerEnv(d.Environ)
		host.findHostFiles(d.Environ)
		host.retarget(&in)
		runner.Wrap = host.wrap
	} else if in.AppDir != "/workspace" {
		wrap, cleanup, why := workspaceBind(&in)
		defer cleanup()
		if wrap != nil {
			runner.Wrap = wrap
			fmt.Fprintf(d.Log, "cipack: the app is at %s: bound at /workspace, where the image will work\n", appDir)
		} else {
			fmt.Fprintf(d.Log, "cipack: note: the image's working directory will be %s, not /workspace: %s\n", appDir, why)
		}
	}
	api, timings, err := execute(ctx, runner, host, b, in, candidates)
	if err != nil {
		reportWritten(ctx, d.Registry, refs.written(), refs.before, d.Log)
		return nil, err
	}

	report, err := lifecycle.ReadReport(reportPath)
	if err != nil {
		reportWritten(ctx, d.Registry, refs.written(), refs.before, d.Log)
		return nil, exit.New(exit.Export, "export phase", err, "the lifecycle finished but left no readable report: check the builder's lifecycle version")
	}
	digest, err := verifyPushed(ctx, d.Registry, refs.written(), report.Image.Digest)
	if err != nil {
		return nil, err
	}
	res := &Result{
		Image:       refs.image.String(),
		Digest:      digest,
		ImageRef:    refs.image.Context().Digest(digest).String(),
		PlatformAPI: api,
		RunImage:    refs.runImage.String(),
		Platform:    registry.PlatformString(registry.HostPlatform()),
		Phases:      timings,
		Duration:    time.Since(start),
	}
	for _, r := range refs.written() {
		res.Tags = append(res.Tags, r.String())
	}
	res.Name = refs.image.Context().Name()
	if opts.SBOMDir != "" {
		n, err := safefs.CopyOut(filepath.Join(layersDir, "sbom"), opts.SBOMDir, maxSBOMFile, maxSBOMTotal)
		if err != nil {
			return nil, exit.New(exit.Export, "--sbom-dir", err, "the image was pushed; make the SBOM directory writable and rerun to get the files")
		}
		res.SBOMDir = opts.SBOMDir
		fmt.Fprintf(d.Log, "cipack: %d SBOM files copied to %s\n", n, opts.SBOMDir)
	}
	if group, err := lifecycle.ReadGroup(filepath.Join(layersDir, "group.toml")); err == nil {
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
	// before is what the image and its tags pointed at before the build.
	before tagState
}

// written lists the references the build writes: the image, then its tags.
func (p preflightRefs) written() []name.Reference {
	out := []name.Reference{p.image}
	for _, t := range p.tags {
		out = append(out, t)
	}
	return out
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
	errs := make([]error, len(keys)+3)
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
	// Where the tags point now: if the build stops half-way, this tells
	// which of them it moved.
	wg.Go(func() { p.before, errs[len(keys)+2] = reg.TagDigests(ctx, p.written()) })
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

// platformPrefix names cipack's platform dirs in the temp dir; the pid
// after it tells a later run whether the dir's owner is still alive.
const platformPrefix = "cipack-platform-"

// writePlatformDir writes one file per variable under env/, the contract
// buildpacks read; values are written verbatim, '=' and newlines included.
// Build env values are often secrets (NPM_TOKEN): the dir is 0700 and the
// files 0600, owned by the build user (who must read them after the
// lifecycle drops privileges) and by no one else. Dirs left by a run that
// was killed are removed first.
func writePlatformDir(env []string, uid, gid int) (string, error) {
	dir, err := scratch.Dir(platformPrefix)
	if err != nil {
		return "", fmt.Errorf("create platform dir: %w", err)
	}
	owned := func(p string, mode os.FileMode) error {
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		if os.Geteuid() == 0 {
			return os.Lchown(p, uid, gid)
		}
		return nil
	}
	envDir := filepath.Join(dir, "env")
	if err := os.Mkdir(envDir, 0o700); err != nil {
		return "", fmt.Errorf("create platform dir: %w", err)
	}
	for _, p := range []string{dir, envDir} {
		if err := owned(p, 0o700); err != nil {
			return "", fmt.Errorf("create platform dir: %w", err)
		}
	}
	for _, e := range env {
		k, v, err := splitEnv("--env", e)
		if err != nil {
			return "", err
		}
		p := filepath.Join(envDir, k)
		if err := os.WriteFile(p, []byte(v), 0o600); err != nil {
			return "", fmt.Errorf("write platform env %s: %w", k, err)
		}
		if err := owned(p, 0o600); err != nil {
			return "", fmt.Errorf("write platform env %s: %w", k, err)
		}
	}
	return dir, nil
}

// writeRunToml writes a run.toml naming the user's run image (so the
// image records that name as runImage.image and later rebases watch it),
// or else the builder's with its mirrors, in the lifecycle's own type.
func writeRunToml(dir, image string, builders files.RunImageForExport) (string, error) {
	run := files.Run{Images: []files.RunImageForExport{builders}}
	if image != "" {
		run.Images = []files.RunImageForExport{{Image: image}}
	}
	p := filepath.Join(dir, "run.toml")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", fmt.Errorf("write run.toml: %w", err)
	}
	defer f.Close()
	if err := toml.NewEncoder(f).Encode(run); err != nil {
		return "", fmt.Errorf("write run.toml: %w", err)
	}
	return p, nil
}

// lifecycleEnv is the environment the lifecycle inherits: only what a
// lifecycle needs from the step (PATH, HOME, locale, proxies, CA files)
// and the user's own CNB_* settings, minus those cipack plans itself. The
// step's secrets (cipack's registry password, tokens, act's INPUT_*
// copies) never reach a process that build code could inspect.
func lifecycleEnv(env []string) []string {
	keep := map[string]bool{"PATH": true, "HOME": true, "USER": true, "LANG": true, "TZ": true, "TMPDIR": true, "HOSTNAME": true,
		"HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true, "http_proxy": true, "https_proxy": true, "no_proxy": true,
		"SSL_CERT_FILE": true, "SSL_CERT_DIR": true}
	planned := map[string]bool{"CNB_PLATFORM_API": true, "CNB_REGISTRY_AUTH": true, "CNB_INSECURE_REGISTRIES": true}
	out := make([]string, 0, len(env))
	for _, e := range env {
		k, _, _ := strings.Cut(e, "=")
		switch {
		case keep[k], strings.HasPrefix(k, "LC_"):
		case strings.HasPrefix(k, "CNB_") && !planned[k]:
		default:
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

// PullMode reports whether the build pulls its builder: asked for, or a
// builder is named and this host has no lifecycle of its own.
func PullMode(o Options) bool {
	switch o.Mode {
	case ModePull:
		return true
	case ModeInBuilder:
		return false
	}
	if o.Builder == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(o.CNBDir, "lifecycle", "creator"))
	return err != nil
}

// workspaceBind puts the app at /workspace for an in-builder build whose
// checkout is elsewhere (a CI's own path would otherwise become the
// image's working directory): the lifecycle runs in a private mount
// namespace with the app bound there. It needs root and a mount namespace
// (a container without CAP_SYS_ADMIN has none); when it cannot, it says
// why. A cache dir under /workspace would be hidden by the bind: it is
// bound at a temporary path instead.
func workspaceBind(in *lifecycle.CreateInputs) (func(lifecycle.Invocation, []string) (*exec.Cmd, func(int) error, error), func(), string) {
	nothing := func() {}
	if os.Geteuid() != 0 {
		return nil, nothing, "binding it there needs root"
	}
	self, err := os.Executable()
	if err != nil {
		return nil, nothing, err.Error()
	}
	// Builder images (pack makes them so) have a /workspace to bind over;
	// cipack does not make one on a filesystem it does not own.
	if fi, err := os.Stat("/workspace"); err != nil || !fi.IsDir() {
		return nil, nothing, "there is no /workspace directory here to bind it over"
	}
	if err := sandbox.Probe(self); err != nil {
		return nil, nothing, "no mount namespace can be made here (a container without CAP_SYS_ADMIN?); pull mode always gives /workspace"
	}
	under := func(p string) bool { return p == "/workspace" || strings.HasPrefix(p, "/workspace/") }
	if under(in.LayersDir) || under(in.PlatformDir) {
		return nil, nothing, "the layers or platform dir is under /workspace"
	}
	var binds []sandbox.Bind
	cleanup := nothing
	if in.CacheDir != "" {
		abs, err := filepath.Abs(in.CacheDir)
		if err != nil {
			return nil, nothing, err.Error()
		}
		if under(abs) {
			alias, err := os.MkdirTemp("", "cipack-cache-")
			if err != nil {
				return nil, nothing, err.Error()
			}
			cleanup = func() { _ = os.Remove(alias) }
			binds = append(binds, sandbox.Bind{Host: abs, Path: alias})
			in.CacheDir = alias
		}
	}
	// Last: once the app covers /workspace, paths under it are hidden.
	binds = append(binds, sandbox.Bind{Host: in.AppDir, Path: "/workspace"})
	in.AppDir = "/workspace"
	return func(inv lifecycle.Invocation, env []string) (*exec.Cmd, func(int) error, error) {
		cmd, done, err := sandbox.Wrap(self, sandbox.Spec{Binds: binds, Argv: append([]string{inv.Path}, inv.Args...), Env: env, Dir: "/workspace"})
		if err != nil {
			return nil, nil, err
		}
		return cmd, func(code int) error {
			done()
			if code == sandbox.SetupFailed {
				return errors.New("the /workspace bind could not be made (its message is above)")
			}
			return nil
		}, nil
	}, cleanup, ""
}

// writeProjectMetadata writes the lifecycle's project-metadata.toml in the
// layers dir (where the exporter reads it by default), in the lifecycle's
// own type: a git source with its commit and repository. Without source
// information any earlier file goes, so no build inherits another's.
func writeProjectMetadata(layersDir, repository, commit string) error {
	p := filepath.Join(layersDir, "project-metadata.toml")
	if repository == "" && commit == "" {
		_ = os.Remove(p)
		return nil
	}
	src := &files.ProjectSource{Type: "git", Version: map[string]interface{}{}, Metadata: map[string]interface{}{}}
	if commit != "" {
		src.Version["commit"] = commit
	}
	if repository != "" {
		src.Metadata["repository"] = repository
	}
	// The layers dir may be a reused one build code wrote to: never
	// write through what it left there.
	f, err := safefs.CreateFresh(p, 0o644)
	if err != nil {
		return fmt.Errorf("write project metadata: %w", err)
	}
	defer f.Close()
	return toml.NewEncoder(f).Encode(files.ProjectMetadata{Source: src})
}

// SBOM copies are bounded: the files come from build code.
const (
	maxSBOMFile  = 64 << 20
	maxSBOMTotal = 512 << 20
)

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

// writeOrder writes an order.toml holding the descriptor's group, after
// checking that the builder has each buildpack (a group entry without a
// version takes the builder's). It returns its path.
func writeOrder(platformDir string, b *lifecycle.Builder, fsys lifecycle.Files, d *project.Descriptor) (string, error) {
	var builderOrder struct {
		Order []struct {
			Group []project.Buildpack `toml:"group"`
		} `toml:"order"`
	}
	if raw, err := fsys.ReadFile(b.Path("order.toml")); err == nil {
		_, _ = toml.Decode(string(raw), &builderOrder)
	}
	versionOf := func(id string) string {
		for _, o := range builderOrder.Order {
			for _, g := range o.Group {
				if g.ID == id && g.Version != "" {
					return g.Version
				}
			}
		}
		return ""
	}
	type entry struct {
		ID      string `toml:"id"`
		Version string `toml:"version"`
	}
	var group []entry
	for _, bp := range d.Group {
		v := bp.Version
		if v == "" {
			v = versionOf(bp.ID)
		}
		dir := b.Path("buildpacks", strings.ReplaceAll(bp.ID, "/", "_"), v)
		if _, err := fsys.Stat(filepath.Join(dir, "buildpack.toml")); v == "" || err != nil {
			return "", exit.Usagef(d.Path, "use buildpacks the builder has, or another builder", "the builder has no buildpack %s%s", bp.ID, atVersion(bp.Version))
		}
		group = append(group, entry{bp.ID, v})
	}
	p := filepath.Join(platformDir, "order.toml")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return "", err
	}
	defer f.Close()
	type orderFile struct {
		Order []struct {
			Group []entry `toml:"group"`
		} `toml:"order"`
	}
	var of orderFile
	of.Order = append(of.Order, struct {
		Group []entry `toml:"group"`
	}{group})
	return p, toml.NewEncoder(f).Encode(of)
}

func atVersion(v string) string {
	if v == "" {
		return ""
	}
	return "@" + v
}
