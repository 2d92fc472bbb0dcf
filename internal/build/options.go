// Package build is `cipack build`: it validates the inputs, checks the
// registries before anything runs, prepares the platform directory, runs
// the builder's lifecycle (creator) and returns what it pushed.
package build

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
)

// Options are the inputs of one build, as plain values: the CLI fills them
// from flags and CIPACK_* variables, CI packagings from their inputs.
type Options struct {
	Image   string
	Tags    []string
	AppPath string
	// SourceRoot is the directory the app must lie in: the CI workspace
	// (GITHUB_WORKSPACE, the Tekton source workspace) or the working
	// directory; the edge fills it in.
	SourceRoot    string
	RunImage      string
	CacheImage    string
	CacheDir      string
	PreviousImage string
	Env           []string // KEY=VALUE; the value may contain '='
	EnvFiles      []string // read in order; later files win, --env wins over all
	ProcessType   string
	PlatformAPI   string // "auto" or "0.14"
	UID, GID      string // empty: the builder's CNB_USER_ID / CNB_GROUP_ID
	Insecure      []string
	CNBDir        string
	LayersDir     string
	// Builder names the builder image this step runs in. Optional: when
	// set, it is checked before the build and its label tells the
	// lifecycle's platform APIs.
	Builder  string
	LogLevel string
	// SourceRepository and SourceCommit become the image's project
	// metadata (io.buildpacks.project.metadata): where it was built from.
	SourceRepository, SourceCommit string
	// Descriptor is the project.toml to apply; empty: the app's own, if
	// it has one.
	Descriptor string
	// SBOMDir, when set, receives the build's SBOM files after export.
	SBOMDir string
	// Buildpacks replace the builder's order with a group (pack's
	// --buildpack); PreBuildpacks and PostBuildpacks wrap each of its
	// groups. Each takes every form pack accepts.
	Buildpacks, PreBuildpacks, PostBuildpacks []string
	// SkipUnchanged runs no lifecycle when the image the tag holds was
	// built from the same app, builder, run image and inputs.
	SkipUnchanged bool
	// BuilderFromApp is set when Builder came from the app's own
	// project.toml: it is then read without the user's credentials.
	BuilderFromApp bool
	// ExecEnv is the execution environment: it scopes project.toml's env
	// and group entries, and the lifecycle gets it as CNB_EXEC_ENV.
	ExecEnv string
	// Mode is ModeAuto, ModePull or ModeInBuilder.
	Mode string
	// BuilderCache is where pull mode keeps unpacked builder layers.
	BuilderCache string
	// BuilderBlobs, when set, keeps the builder's compressed layer blobs
	// (an OCI layout any user can read: what a CI cache saves).
	BuilderBlobs string
	// TrustBuilder runs a pulled builder's own creator with the registry
	// credentials (one process, faster); by default the credential phases
	// run the lifecycle in LifecycleDir, which cipack verifies.
	TrustBuilder bool
	LifecycleDir string
	// Runtime is the OCI runtime pull mode uses: empty, crun or runc,
	// whichever is on PATH first.
	Runtime string
	// Network is build code's network in pull mode: NetworkIsolated,
	// NetworkHost or NetworkNone; empty: isolated when a network stack
	// is installed, else host (network.go).
	Network string

	// Cwd is the working directory cipack was started in (the edge reads
	// it): Validate makes every relative path flag absolute against it,
	// so nothing later depends on a thread's or child's working
	// directory. Empty leaves the paths as given.
	Cwd string

	// fileEnv holds the EnvFiles' entries, read once by Validate.
	fileEnv []string
}

// Build modes: in the builder (the step's image is the builder), or pull
// (the builder is pulled and unpacked on a plain host).
const (
	ModeAuto      = "auto"
	ModePull      = "pull"
	ModeInBuilder = "in-builder"
)

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// execEnvPattern is pack's rule for --exec-env ('/' is reserved).
var execEnvPattern = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// Validate checks every input that can be checked without I/O to a
// registry, and names the input at fault. It runs before any work.
func (o *Options) Validate() error {
	o.absPaths()
	if strings.TrimSpace(o.Image) == "" {
		return exit.Usagef("--image", "pass the image to build, e.g. --image registry.example/team/app", "no image given")
	}
	if _, err := name.ParseReference(o.Image); err != nil {
		return exit.Usagef("--image", imageHint(o.Image), "invalid image reference %q: %v", o.Image, err)
	}
	if _, err := name.NewDigest(o.Image); err == nil {
		return exit.Usagef("--image", "name a tag, not a digest: the build makes a new digest", "image %q is a digest reference", o.Image)
	}
	for _, t := range o.Tags {
		if _, err := ResolveTag(o.Image, t); err != nil {
			return err
		}
	}
	for _, r := range []struct{ flag, val string }{{"--run-image", o.RunImage}, {"--cache-image", o.CacheImage}, {"--previous-image", o.PreviousImage}, {"--builder", o.Builder}} {
		if r.val == "" {
			continue
		}
		if _, err := name.ParseReference(r.val); err != nil {
			return exit.Usagef(r.flag, "use a reference like registry.example/team/name:tag", "invalid image reference %q: %v", r.val, err)
		}
	}
	if o.CacheImage != "" && o.CacheDir != "" {
		return exit.Usagef("--cache-image", "give either --cache-image or --cache-dir", "both a cache image and a cache dir were given")
	}
	if err := checkDir("--path", o.AppPath); err != nil {
		return err
	}
	if _, err := ResolveApp(o.AppPath, o.SourceRoot); err != nil {
		return err
	}
	for _, e := range o.Env {
		if _, _, err := splitEnv("--env", e); err != nil {
			return err
		}
	}
	o.fileEnv = nil
	for _, f := range o.EnvFiles {
		env, err := ReadEnvFile(f)
		if err != nil {
			return err
		}
		o.fileEnv = append(o.fileEnv, env...)
	}
	if o.PlatformAPI != "" && o.PlatformAPI != cnb.Auto {
		if _, err := cnb.ParseAPI(o.PlatformAPI); err != nil {
			return exit.Usagef("--platform-api", "give a version such as 0.14, or auto", "%v", err)
		}
		if !slices.Contains(cnb.SupportedAPIs, o.PlatformAPI) {
			return exit.Usagef("--platform-api", fmt.Sprintf("choose one of %v, or auto", cnb.SupportedAPIs),
				"cipack does not support platform API %s", o.PlatformAPI)
		}
	}
	for _, id := range []struct{ flag, val string }{{"--uid", o.UID}, {"--gid", o.GID}} {
		if id.val == "" {
			continue
		}
		if _, ok := parseID(id.val); !ok {
			return exit.Usagef(id.flag, "give a numeric id from 0 to 4294967294, such as 1000, or leave it empty to use the builder's", "%q is not a user or group id", id.val)
		}
	}
	if err := checkSBOMDir(o.SBOMDir); err != nil {
		return err
	}
	switch o.Mode {
	case "", ModeAuto, ModeInBuilder:
	case ModePull:
		if o.Builder == "" {
			return exit.Usagef("--builder", "name the builder image to pull, e.g. paketobuildpacks/builder-jammy-base", "pull mode needs --builder")
		}
	default:
		return exit.Usagef("--mode", "use auto, pull or in-builder", "unknown mode %q", o.Mode)
	}
	if o.ExecEnv == "" {
		o.ExecEnv = "production"
	}
	if !execEnvPattern.MatchString(o.ExecEnv) {
		return exit.Usagef("--exec-env", "use letters, digits, '.' and '-', e.g. production or test", "invalid execution environment %q", o.ExecEnv)
	}
	if err := checkNetwork(o.Network); err != nil {
		return err
	}
	switch o.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return exit.Usagef("--log-level", "use debug, info, warn or error", "unknown log level %q", o.LogLevel)
	}
	return nil
}

// absPaths makes each relative path flag absolute against o.Cwd. The
// --oci-runtime is a path only when it has a '/' (else a name on PATH);
// --buildpack sources are resolved against Deps.Cwd where they are read.
func (o *Options) absPaths() {
	if o.Cwd == "" {
		return
	}
	for _, p := range []*string{&o.AppPath, &o.SourceRoot, &o.CacheDir, &o.Descriptor, &o.SBOMDir, &o.CNBDir,
		&o.LayersDir, &o.BuilderCache, &o.BuilderBlobs, &o.LifecycleDir} {
		*p = AbsPath(o.Cwd, *p)
	}
	if o.AppPath == "" {
		o.AppPath = o.Cwd
	}
	if o.SourceRoot == "" {
		o.SourceRoot = o.Cwd
	}
	for i, f := range o.EnvFiles {
		o.EnvFiles[i] = AbsPath(o.Cwd, f)
	}
	if strings.Contains(o.Runtime, "/") {
		o.Runtime = AbsPath(o.Cwd, o.Runtime)
	}
}

// AbsPath is p made absolute against cwd; an empty p stays empty (an
// unset flag).
func AbsPath(cwd, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(cwd, p)
}

// ResolveTag turns an additional tag into a full reference: a bare tag
// ("v1") is taken in the image's repository, anything else must parse.
func ResolveTag(image, tag string) (name.Tag, error) {
	if !strings.ContainsAny(tag, "/:@") {
		img, err := name.ParseReference(image)
		if err != nil {
			return name.Tag{}, exit.Usagef("--image", "", "invalid image reference %q: %v", image, err)
		}
		t, err := name.NewTag(img.Context().String() + ":" + tag)
		if err != nil {
			return name.Tag{}, exit.Usagef("--tag", "tags are up to 128 letters, digits, '_', '.', '-'", "invalid tag %q: %v", tag, err)
		}
		return t, nil
	}
	t, err := name.NewTag(tag)
	if err != nil {
		return name.Tag{}, exit.Usagef("--tag", "give a bare tag (v1) or a full tag reference (registry.example/team/app:v1)", "invalid tag %q: %v", tag, err)
	}
	return t, nil
}

func checkDir(flag, p string) error {
	if p == "" {
		p = "."
	}
	fi, err := os.Stat(p)
	if err != nil {
		return exit.Usagef(flag, "point it at the app's source directory", "app path %q: %v", p, unwrapPath(err))
	}
	if !fi.IsDir() {
		return exit.Usagef(flag, "point it at the app's source directory", "app path %q is not a directory", p)
	}
	f, err := os.Open(p)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	if err != nil && err.Error() != "EOF" {
		return exit.Usagef(flag, "make the directory readable", "app path %q cannot be read: %v", p, unwrapPath(err))
	}
	return nil
}

func unwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// splitEnv splits KEY=VALUE at the first '=' only, so values keep theirs.
func splitEnv(input, entry string) (string, string, error) {
	k, v, ok := strings.Cut(entry, "=")
	if !ok {
		return "", "", exit.Usagef(input, "write each entry as KEY=VALUE", "env entry %q has no '='", redactEntry(entry))
	}
	if !envKey.MatchString(k) {
		return "", "", exit.Usagef(input, "names are letters, digits and '_', not starting with a digit", "env entry has an invalid name %q", k)
	}
	return k, v, nil
}

// redactEntry keeps enough of a malformed entry to find it, not enough to
// leak a secret that was pasted without its KEY=.
func redactEntry(s string) string {
	if len(s) > 12 {
		return s[:4] + "…"
	}
	return s
}

// ReadEnvFile reads KEY=VALUE lines; blank lines and lines starting with #
// are skipped. Errors name the file and line.
func ReadEnvFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, exit.Usagef("--env-file", "point it at a readable file of KEY=VALUE lines", "%v", err)
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	s.Buffer(make([]byte, 64*1024), 1024*1024)
	for n := 1; s.Scan(); n++ {
		line := strings.TrimSpace(s.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		if _, _, err := splitEnv(fmt.Sprintf("--env-file %s:%d", filepath.Base(path), n), line); err != nil {
			return nil, err
		}
		out = append(out, line)
	}
	if err := s.Err(); err != nil {
		return nil, exit.Usagef("--env-file", "", "read %s: %v", path, err)
	}
	return out, nil
}

// ExpandEnv turns each --env entry given as a bare KEY (pack's habit)
// into KEY=VALUE with the value from lookup (cipack's own environment,
// read at the edge). A KEY that is not set is an error naming it; an
// entry that is not a name is left for Validate to refuse without
// echoing it.
func ExpandEnv(entries []string, lookup func(string) (string, bool)) ([]string, error) {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		if strings.Contains(e, "=") || !envKey.MatchString(e) {
			out = append(out, e)
			continue
		}
		v, ok := lookup(e)
		if !ok {
			return nil, exit.Usagef("--env", "set "+e+" in the step's environment, or give --env "+e+"=VALUE", "--env %s takes its value from the environment, and %s is not set", e, e)
		}
		out = append(out, e+"="+v)
	}
	return out, nil
}

// checkSBOMDir refuses, before anything is pushed, an --sbom-dir that the
// copy after export would refuse: a symbolic link or not a directory.
func checkSBOMDir(dir string) error {
	if dir == "" {
		return nil
	}
	fi, err := os.Lstat(dir)
	switch {
	case os.IsNotExist(err):
		return nil
	case err != nil:
		return exit.Usagef("--sbom-dir", "name a directory cipack can write", "%v", err)
	case fi.Mode()&os.ModeSymlink != 0:
		return exit.Usagef("--sbom-dir", "name the real directory: cipack does not write through links", "%s is a symbolic link", dir)
	case !fi.IsDir():
		return exit.Usagef("--sbom-dir", "name a directory", "%s is not a directory", dir)
	}
	return nil
}

// imageHint says how to fix an image reference; upper case gets its own
// word, since GitHub repository names (the usual source) may have it.
func imageHint(ref string) string {
	repo, _, _ := strings.Cut(ref, ":")
	if i := strings.Index(ref, "/"); i >= 0 {
		// The registry host may have a port; the repository is after it.
		repo, _, _ = strings.Cut(ref[i+1:], ":")
	}
	if strings.ToLower(repo) != repo {
		return "repository names are lower case: write it in lower case; from GitHub's repository name, lower-case it first, " +
			"e.g. in a bash step: echo \"image=ghcr.io/${GITHUB_REPOSITORY,,}\" >> \"$GITHUB_OUTPUT\""
	}
	return "use a reference like registry.example/team/app:tag (lower case)"
}

// parseID reads a Linux user or group id: 32 bits, and not (uid_t)-1,
// which chown and setuid take as "leave unchanged". A larger number would
// be truncated by the kernel's types into another user.
func parseID(s string) (int, bool) {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 1<<32-1 {
		return 0, false
	}
	return int(n), true
}
