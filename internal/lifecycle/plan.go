package lifecycle

import (
	"sort"
	"strconv"
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
	Order          string
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
}

// PlanCreate builds the creator invocation for in. It is pure: the same
// inputs always give the same argv, which is what the tests and the
// benchmark's "bare lifecycle" anchor rely on.
func PlanCreate(b *Builder, in CreateInputs) Invocation {
	args := []string{
		"-app", in.AppDir,
		"-layers", in.LayersDir,
		"-platform", in.PlatformDir,
		"-buildpacks", b.Path("buildpacks"),
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
	if AtLeast(in.PlatformAPI, "0.13") {
		for _, r := range in.Insecure {
			args = append(args, "-insecure-registry", r)
		}
	}
	for _, t := range in.Tags {
		args = append(args, "-tag", t)
	}
	args = append(args, in.Image)

	env := []string{"CNB_PLATFORM_API=" + in.PlatformAPI}
	if in.RegistryAuth != "" {
		env = append(env, "CNB_REGISTRY_AUTH="+in.RegistryAuth)
	}
	if len(in.Insecure) > 0 && !AtLeast(in.PlatformAPI, "0.13") {
		env = append(env, "CNB_INSECURE_REGISTRIES="+join(in.Insecure))
	}
	sort.Strings(env[1:])
	return Invocation{Path: b.Creator(), Args: args, Env: env}
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
