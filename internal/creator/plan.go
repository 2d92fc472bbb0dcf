package creator

import (
	"slices"
	"sort"
	"strconv"

	"github.com/cipack/cipack/internal/cnb"
)

// CreateInputs are the platform's decisions for one creator run. All paths
// are absolute; nothing here is read from the environment.
type CreateInputs struct {
	PlatformAPI string
	Image       string
	Tags        []string
	AppDir      string
	LayersDir   string
	PlatformDir string
	ReportPath  string
	// RunToml is a run.toml the platform wrote (for an explicit run image);
	// empty: the builder's own run.toml decides.
	RunToml string
	// Order is an order.toml the platform wrote (a project.toml group);
	// empty: the builder's.
	Order string
	// BuildpacksDir is a buildpacks dir the platform assembled (the
	// builder's buildpacks and the user's); empty: the builder's.
	BuildpacksDir string
	// ExecEnv is the execution environment (CNB_EXEC_ENV, platform API
	// 0.15 and later); empty: the lifecycle's default, production.
	ExecEnv string
	// AnalyzedPath, when set, is where the split phases keep
	// analyzed.toml: out of the layers dir, which build code can write
	// (it names the images the credential phases read).
	AnalyzedPath   string
	CacheImage     string
	CacheDir       string
	PreviousImage  string
	ProcessType    string
	UID, GID       int
	Insecure       []string
	RegistryAuth   string // CNB_REGISTRY_AUTH value, passed in the env, never argv
	LogLevel       string
	ParallelExport bool
}

// Invocation is a planned process: path, argv and the env added to the
// parent's.
type Invocation struct {
	Path string
	Args []string
	Env  []string
	// Phase names a phase run on its own ("analyze", …); empty for the
	// creator, which runs them all.
	Phase string
	// Trusted marks a phase that holds registry credentials: in pull
	// mode it runs the lifecycle cipack pins, never the builder's.
	Trusted bool
}

// PlanCreate builds the creator invocation for in. It is pure: the same
// inputs always give the same argv, which is what the tests and the
// benchmark's "bare lifecycle" anchor rely on.
func PlanCreate(b *Builder, in CreateInputs) Invocation {
	args := []string{
		"-app", in.AppDir,
		"-layers", in.LayersDir,
		"-platform", in.PlatformDir,
		"-buildpacks", orDefault(in.BuildpacksDir, b.Path("buildpacks")),
		"-order", orDefault(in.Order, b.Path("order.toml")),
		"-launcher", b.Path("lifecycle", "launcher"),
		"-report", in.ReportPath,
		"-uid", strconv.Itoa(in.UID),
		"-gid", strconv.Itoa(in.GID),
	}
	switch {
	case in.RunToml != "":
		// Not -run-image: the exporter would still record the builder's
		// run.toml name as runImage.image, and rebase would then watch an
		// image the user did not choose.
		args = append(args, "-run", in.RunToml)
	case b.HasRunToml:
		args = append(args, "-run", b.Path("run.toml"))
	case b.HasStackToml:
		args = append(args, "-stack", b.Path("stack.toml"))
	}
	if in.CacheImage != "" {
		args = append(args, "-cache-image", in.CacheImage)
	}
	if in.CacheDir != "" {
		args = append(args, "-cache-dir", in.CacheDir)
	}
	if in.PreviousImage != "" {
		args = append(args, "-previous-image", in.PreviousImage)
	}
	if in.ProcessType != "" {
		args = append(args, "-process-type", in.ProcessType)
	}
	if in.LogLevel != "" {
		args = append(args, "-log-level", in.LogLevel)
	}
	if in.ParallelExport {
		args = append(args, "-parallel")
	}
	if cnb.AtLeast(in.PlatformAPI, "0.13") {
		for _, r := range in.Insecure {
			args = append(args, "-insecure-registry", r)
		}
	}
	for _, t := range in.Tags {
		args = append(args, "-tag", t)
	}
	args = append(args, in.Image)

	env := baseEnv(in)
	if in.RegistryAuth != "" {
		env = append(env, "CNB_REGISTRY_AUTH="+in.RegistryAuth)
	}
	if len(in.Insecure) > 0 && !cnb.AtLeast(in.PlatformAPI, "0.13") {
		env = append(env, "CNB_INSECURE_REGISTRIES="+join(in.Insecure))
	}
	sort.Strings(env[1:])
	return Invocation{Path: b.Creator(), Args: args, Env: env}
}

// baseEnv is what every phase gets: the platform API and, where the API
// has it, the execution environment (pack passes it from 0.15 on).
func baseEnv(in CreateInputs) []string {
	env := []string{"CNB_PLATFORM_API=" + in.PlatformAPI}
	if in.ExecEnv != "" && cnb.AtLeast(in.PlatformAPI, "0.15") {
		env = append(env, "CNB_EXEC_ENV="+in.ExecEnv)
	}
	return env
}

func join(s []string) string {
	out := ""
	for i, v := range s {
		if i > 0 {
			out += ","
		}
		out += v
	}
	return out
}

func orDefault(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// PlanPhases plans the five phases the creator would run, as pack does
// for a builder it does not trust: analyze, restore and export (which
// talk to registries) are Trusted and get the credentials; detect and
// build run the builder's lifecycle and buildpacks without them. Paths
// are the builder's fixed ones: the caller runs each phase in a
// container where the trusted lifecycle's binaries stand at
// b.Path("lifecycle", phase).
func PlanPhases(b *Builder, in CreateInputs) []Invocation {
	ids := []string{"-uid", strconv.Itoa(in.UID), "-gid", strconv.Itoa(in.GID)}
	var insecure []string
	if cnb.AtLeast(in.PlatformAPI, "0.13") {
		for _, r := range in.Insecure {
			insecure = append(insecure, "-insecure-registry", r)
		}
	}
	cache := []string{}
	if in.CacheImage != "" {
		cache = append(cache, "-cache-image", in.CacheImage)
	}
	if in.CacheDir != "" {
		cache = append(cache, "-cache-dir", in.CacheDir)
	}
	logLevel := []string{}
	if in.LogLevel != "" {
		logLevel = []string{"-log-level", in.LogLevel}
	}
	run := []string{"-run", orDefault(in.RunToml, b.Path("run.toml"))}
	if in.AnalyzedPath != "" {
		run = append(run, "-analyzed", in.AnalyzedPath)
	}
	order := orDefault(in.Order, b.Path("order.toml"))
	dirs := []string{"-app", in.AppDir, "-layers", in.LayersDir, "-platform", in.PlatformDir, "-buildpacks", orDefault(in.BuildpacksDir, b.Path("buildpacks"))}

	analyze := cat([]string{"-layers", in.LayersDir}, run, ids, logLevel, insecure)
	if in.CacheImage != "" {
		analyze = append(analyze, "-cache-image", in.CacheImage)
	}
	if in.PreviousImage != "" {
		analyze = append(analyze, "-previous-image", in.PreviousImage)
	}
	for _, t := range in.Tags {
		analyze = append(analyze, "-tag", t)
	}
	analyze = append(analyze, in.Image)
	detect := cat(dirs, []string{"-order", order}, run, logLevel)
	restore := cat([]string{"-layers", in.LayersDir}, run, ids, cache, logLevel, insecure)
	build := cat(dirs, logLevel)
	if in.AnalyzedPath != "" {
		build = append(build, "-analyzed", in.AnalyzedPath)
	}
	export := cat([]string{"-app", in.AppDir, "-layers", in.LayersDir, "-launcher", b.Path("lifecycle", "launcher"),
		"-report", in.ReportPath}, run, ids, cache, logLevel, insecure)
	if in.ProcessType != "" {
		export = append(export, "-process-type", in.ProcessType)
	}
	export = append(append(export, in.Image), in.Tags...)

	base := baseEnv(in)
	auth := slices.Clone(base)
	if in.RegistryAuth != "" {
		auth = append(auth, "CNB_REGISTRY_AUTH="+in.RegistryAuth)
	}
	if len(in.Insecure) > 0 && !cnb.AtLeast(in.PlatformAPI, "0.13") {
		auth = append(auth, "CNB_INSECURE_REGISTRIES="+join(in.Insecure))
	}
	phase := func(name, bin string, args []string, trusted bool) Invocation {
		env := base
		if trusted {
			env = auth
		}
		return Invocation{Path: b.Path("lifecycle", bin), Args: args, Env: env, Phase: name, Trusted: trusted}
	}
	return []Invocation{
		phase("analyzing", "analyzer", analyze, true),
		phase("detecting", "detector", detect, false),
		phase("restoring", "restorer", restore, true),
		phase("building", "builder", build, false),
		phase("exporting", "exporter", export, true),
	}
}

func cat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}
