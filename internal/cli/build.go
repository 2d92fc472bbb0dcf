package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cipack/cipack/internal/build"
	"github.com/cipack/cipack/internal/ci"
	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// buildOptions are the flags of `cipack build`.
type buildOptions struct {
	build.Options
	Output          string
	RegistryTimeout time.Duration
}

func (o *buildOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.Image, "image", "i", "", "image to build and push (required), e.g. registry.example/team/app:latest")
	f.StringSliceVarP(&o.Tags, "tag", "t", nil, "additional tag: a bare tag (v1) or a full reference; repeatable")
	f.StringVarP(&o.AppPath, "path", "p", ".", "app source directory")
	f.StringVar(&o.SourceRoot, "source-root", "", "directory the app must lie in (default: the CI workspace, else the working directory)")
	f.StringVar(&o.RunImage, "run-image", "", "run image (default: the builder's run.toml)")
	f.StringVar(&o.CacheImage, "cache-image", "", "image to keep the build cache in")
	f.StringVar(&o.CacheDir, "cache-dir", "", "directory to keep the build cache in")
	f.StringVar(&o.PreviousImage, "previous-image", "", "image to reuse layers from (default: --image)")
	f.StringArrayVarP(&o.Env, "env", "e", nil, "build env var KEY=VALUE (the value may contain '='), or KEY to take its value from the environment; repeatable")
	f.StringArrayVar(&o.EnvFiles, "env-file", nil, "file of KEY=VALUE lines for the build env; repeatable, later files win")
	f.StringVar(&o.ProcessType, "process-type", "", "default process type of the image (default: none forced)")
	f.StringVarP(&o.ProcessType, "default-process", "D", "", "the same as --process-type (pack's name for it)")
	f.StringVar(&o.PlatformAPI, "platform-api", "auto", "CNB platform API, or auto for the highest both sides support")
	f.StringVar(&o.UID, "uid", "", "user id the build runs as (default: the builder's CNB_USER_ID)")
	f.StringVar(&o.GID, "gid", "", "group id the build runs as (default: the builder's CNB_GROUP_ID)")
	f.StringSliceVar(&o.Insecure, "insecure-registry", nil, "registry host[:port] that may be reached over plain HTTP; repeatable")
	addTimeoutFlag(f, &o.RegistryTimeout)
	f.StringVarP(&o.Builder, "builder", "B", "", "the builder image: pulled and run in a sandbox on a plain host (pull mode); in a builder step, checked first")
	f.StringVar(&o.SourceRepository, "source-repository", "", "repository URL recorded in the image's project metadata (default: the CI's, e.g. GitHub's server/repository)")
	f.StringVar(&o.SourceCommit, "source-commit", "", "commit recorded in the image's project metadata (default: the CI's, e.g. GITHUB_SHA)")
	f.StringSliceVarP(&o.Buildpacks, "buildpack", "b", nil, "buildpack to run instead of the builder's order, as pack takes it: a directory, a .tgz, docker://IMAGE or an image reference, urn:cnb:builder:ID[@VERSION] or ID@VERSION; repeatable, in order")
	f.StringArrayVar(&o.PreBuildpacks, "pre-buildpack", nil, "buildpack to run before each group of the builder's order (any --buildpack form); repeatable")
	f.StringArrayVar(&o.PostBuildpacks, "post-buildpack", nil, "buildpack to run after each group of the builder's order (any --buildpack form); repeatable")
	f.BoolVar(&o.SkipUnchanged, "skip-unchanged", false, "run no lifecycle when the image the tag holds was built from the same app (after include/exclude), builder, run image, build env and arguments; its tags still converge and its digest is printed")
	f.StringVar(&o.ExecEnv, "exec-env", "production", "execution environment: scopes project.toml's env and buildpacks, and is CNB_EXEC_ENV for the lifecycle (platform API 0.15+)")
	f.StringVarP(&o.Descriptor, "descriptor", "d", "", "the project descriptor to apply (default: project.toml in the app, if any), as pack's --descriptor")
	f.StringVar(&o.SBOMDir, "sbom-dir", "", "copy the build's SBOM files here after export (laid out like pack's --sbom-output-dir)")
	f.StringVar(&o.SBOMDir, "sbom-output-dir", "", "the same as --sbom-dir (pack's name for it)")
	// pack builds into the Docker daemon unless told --publish; cipack
	// always pushes, so the flag changes nothing and is kept for scripts
	// written for pack.
	f.Bool("publish", true, "accepted for pack's scripts: cipack always pushes to the registry")
	f.StringVar(&o.CNBDir, "cnb-dir", "/cnb", "the builder's CNB directory (lifecycle, buildpacks, order.toml)")
	f.StringVar(&o.Mode, "mode", build.ModeAuto, "auto (pull the --builder when there is no lifecycle at --cnb-dir), pull, or in-builder")
	f.StringVar(&o.BuilderCache, "builder-cache", "", "where pull mode keeps its verified layer store (default: /var/cache/cipack/builders, root-owned, outside the user's home)")
	f.StringVar(&o.LayersDir, "layers-dir", "/layers", "the lifecycle's layers directory")
	f.StringVar(&o.BuilderBlobs, "builder-blobs", "", "pull mode: also keep the builder's compressed layer blobs here, an OCI layout any user can read (what a CI cache saves); verified before use")
	f.BoolVar(&o.TrustBuilder, "trust-builder", false, "pull mode: run the builder's own creator with the registry credentials (one process, faster); "+
		"by default only a lifecycle cipack verifies gets them, and the builder's buildpacks run without")
	f.StringVar(&o.LifecycleDir, "lifecycle-dir", "", "pull mode: the directory of the trusted lifecycle and launcher binaries (default: next to cipack)")
	f.StringVar(&o.Runtime, "oci-runtime", "", "pull mode: the OCI runtime, crun or runc or a path (default: crun, else runc, from PATH)")
	f.StringVar(&o.Network, "network", "", "pull mode: build code's network: isolated (its own, through pasta or slirp4netns; the default when one is installed), "+
		"host (the runner's: its loopback and metadata endpoint too; the default without either) or none (loopback only)")
	f.StringVar(&o.LogLevel, "log-level", "", "lifecycle log level: debug, info, warn, error")
	f.StringVarP(&o.Output, "output", "o", "text", "result format on stdout: text (IMAGE@DIGEST) or json")
}

func (o *buildOptions) Validate() error {
	if err := validateOutput(o.Output, o.RegistryTimeout); err != nil {
		return err
	}
	return o.Options.Validate()
}

// validateOutput checks the flags every pushing command shares: the
// result format and the registry deadline.
func validateOutput(output string, timeout time.Duration) error {
	if output != "text" && output != "json" {
		return exit.Usagef("--output", "use text or json", "unknown output format %q", output)
	}
	return validateTimeout(timeout)
}

// images are every image the build reads or writes (bare tags resolved):
// the registry credentials given to cipack cover them all.
func (o *buildOptions) images() []string {
	out := []string{o.Image, o.CacheImage, o.PreviousImage, o.RunImage, o.Builder}
	// Buildpackage images the user named get the same credentials; those
	// an app's project.toml names do not (the app may be anyone's).
	for _, bp := range slices.Concat(o.Buildpacks, o.PreBuildpacks, o.PostBuildpacks) {
		if ref, ok := strings.CutPrefix(bp, "docker://"); ok {
			out = append(out, ref)
		}
	}
	for _, t := range o.Tags {
		if tag, err := build.ResolveTag(o.Image, t); err == nil {
			out = append(out, tag.String())
		}
	}
	return out
}

func newBuildCmd(env Env) *cobra.Command {
	o := &buildOptions{}
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Build the app with the builder's lifecycle and push the image",
		Long: `Build runs inside a CNB builder (the CI step's image is the builder): it
checks the registries, runs the lifecycle's creator and prints IMAGE@DIGEST.
Every flag can also be set as CIPACK_<FLAG>, e.g. CIPACK_IMAGE, CIPACK_RUN_IMAGE;
multi-value flags take one value per line.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withReporter(env, func(rep ci.Reporter) error { return runBuild(cmd, o, env, rep) })
		},
	}
	o.addFlags(cmd)
	return cmd
}

func runBuild(cmd *cobra.Command, o *buildOptions, env Env, rep ci.Reporter) error {
	if err := bindEnv(cmd.Flags(), env.Getenv); err != nil {
		return err
	}
	cwd, err := os.Getwd()
	if err != nil {
		return err
	}
	o.Cwd = cwd // Validate makes relative paths absolute against it
	if o.SourceRoot == "" {
		o.SourceRoot = ci.Workspace(env.Getenv)
	}
	if o.SourceRepository == "" && o.SourceCommit == "" {
		o.SourceRepository, o.SourceCommit = ci.Source(env.Getenv)
	}
	expanded, err := build.ExpandEnv(o.Env, lookupIn(env.Environ))
	if err != nil {
		return err
	}
	o.Env = expanded
	if o.BuilderCache == "" {
		o.BuilderCache = defaultBuilderCache(os.Geteuid(), os.UserCacheDir)
	}
	// The images the user named get the credentials; a builder the app's
	// project.toml names is not one of them.
	named := o.images()
	if from := build.DescriptorBuilder(&o.Options); from != "" {
		fmt.Fprintf(env.Stderr, "cipack: builder %s, from %s (pass --builder to choose another)\n", o.Builder, from)
	}
	if err := o.Validate(); err != nil {
		return err
	}
	if build.PullMode(o.Options) && os.Geteuid() != 0 && env.Reexec != nil {
		// Pull mode mounts: run again through passwordless sudo when there
		// is one (GitHub-hosted runners), else fail below with exit 6.
		if err := env.Reexec(); err != nil {
			fmt.Fprintf(env.Stderr, "cipack: pull mode needs root and sudo is not usable: %v\n", err)
		}
	}
	reg, err := newRegistry(env, o.Insecure, o.RegistryTimeout, named...)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if o.LifecycleDir == "" {
		o.LifecycleDir = filepath.Dir(self)
	}
	bi, _ := debug.ReadBuildInfo()
	res, err := build.Run(cmd.Context(), o.Options, build.Deps{
		Registry:   reg,
		Log:        env.Stderr,
		Observer:   rep,
		Environ:    env.Environ,
		BuilderUID: env.Getenv("CNB_USER_ID"),
		BuilderGID: env.Getenv("CNB_GROUP_ID"),
		Self:       self,
		Euid:       os.Geteuid(),
		LookPath:   exec.LookPath,
		Pinned:     creator.PinnedModule(bi),
		TempDir:    build.AbsPath(cwd, os.TempDir()), // a relative TMPDIR means cwd's, in every child too
		Cwd:        cwd,
	})
	if err != nil {
		return err
	}
	if err := res.Check(); err != nil {
		return err
	}
	if err := rep.Outputs(map[string]string{
		"image":     res.Image,
		"digest":    res.Digest,
		"image-ref": res.ImageRef,
		"tags":      strings.Join(res.Tags, "\n"),
		"platform":  res.Platform,
		"name":      res.Name,
		"sbom-dir":  res.SBOMDir,
		"skipped":   strconv.FormatBool(res.Skipped),
	}); err != nil {
		return err
	}
	if err := rep.Summary(res.Markdown()); err != nil {
		return err
	}
	return printResult(env, o.Output, res, res.ImageRef)
}

// printResult prints what a command pushed: IMAGE@DIGEST, or the whole
// result as JSON with --output json.
func printResult(env Env, format string, res any, imageRef string) error {
	if format == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	_, err := fmt.Fprintln(env.Stdout, imageRef)
	return err
}

// newRegistry builds the registry client from the environment: the
// CNB_REGISTRY_AUTH and GitHub token every command honours, and the
// CIPACK_REGISTRY_USERNAME/PASSWORD pair (the actions' inputs), used for
// the registries of the images the command writes.
func newRegistry(env Env, insecure []string, timeout time.Duration, images ...string) (*registry.Client, error) {
	var regs, known []string
	for _, img := range images {
		if r, err := name.ParseReference(img); err == nil {
			regs = append(regs, r.Context().RegistryStr())
			known = append(known, img)
		}
	}
	return registry.New(registry.Options{
		Insecure:        insecure,
		Timeout:         timeout,
		CNBRegistryAuth: env.Getenv("CNB_REGISTRY_AUTH"),
		GitHubToken:     env.Getenv("CIPACK_GITHUB_TOKEN"),
		GitHubActor:     env.Getenv("GITHUB_ACTOR"),
		Username:        env.Getenv("CIPACK_REGISTRY_USERNAME"),
		Password:        env.Getenv("CIPACK_REGISTRY_PASSWORD"),
		Registries:      regs,
		Images:          known,
		DockerConfigDir: dockerConfigDir(env.Getenv),
	})
}

// dockerConfigDir is where the docker config is read from, as the docker
// CLI decides it: DOCKER_CONFIG, else ~/.docker.
func dockerConfigDir(getenv func(string) string) string {
	if d := getenv("DOCKER_CONFIG"); d != "" {
		return d
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".docker")
	}
	return ""
}

// addTimeoutFlag registers --registry-timeout, the one setting that bounds
// every registry request (connect and first byte, then each silence).
func addTimeoutFlag(f *pflag.FlagSet, d *time.Duration) {
	f.DurationVar(d, "registry-timeout", registry.DefaultTimeout, "longest wait for a registry to answer, and longest silence while it streams")
}

func validateTimeout(d time.Duration) error {
	if d < time.Second || d > time.Hour {
		return exit.Usagef("--registry-timeout", "use a duration from 1s to 1h, e.g. 30s", "%s is out of range", d)
	}
	return nil
}

// withReporter runs a command with its CI reporter: secrets are masked
// before anything can print them, and a failure is reported under the name
// the user knows the failing input by.
func withReporter(env Env, run func(ci.Reporter) error) error {
	commands := env.commands
	if commands == nil {
		commands = env.Stderr
	}
	rep := ci.Detect(env.Getenv, commands)
	for _, s := range secrets(env.Getenv) {
		rep.Mask(s)
	}
	err := rep.Check()
	if err != nil {
		err = exit.New(exit.Usage, "CI outputs", err, "the step's output files must be writable before cipack pushes anything")
	} else {
		err = run(rep)
	}
	if err != nil {
		var subject string
		var e *exit.Error
		if errors.As(err, &e) {
			subject = e.Subject
		}
		rep.Error(subject, err)
	}
	return err
}

// secrets are the values that must never reach a log line.
func secrets(getenv func(string) string) []string {
	var out []string
	for _, k := range []string{"CNB_REGISTRY_AUTH", "CIPACK_GITHUB_TOKEN", "CIPACK_REGISTRY_PASSWORD"} {
		if v := getenv(k); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// lookupIn looks a variable up in an environment list (the edge's).
func lookupIn(environ []string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		for i := len(environ) - 1; i >= 0; i-- {
			if v, ok := strings.CutPrefix(environ[i], k+"="); ok {
				return v, true
			}
		}
		return "", false
	}
}

// systemBuilderCache is the layer store root uses by default.
const systemBuilderCache = "/var/cache/cipack/builders"

// defaultBuilderCache is where pull mode keeps its layer store unless
// --builder-cache says. The store is root-only (0700): as root, and so
// under the sudo re-exec whose HOME is still the user's, it goes to a
// root-owned place outside the user's home, where it cannot leave the
// user a directory they cannot remove. As another user (no pull mode
// without root; the value is only shown) it is the user's cache dir.
func defaultBuilderCache(euid int, userCacheDir func() (string, error)) string {
	if euid == 0 {
		return systemBuilderCache
	}
	dir, err := userCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "cipack", "builders")
}
