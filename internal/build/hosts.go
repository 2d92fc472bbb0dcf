package build

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/sandbox"
)

// host is where the lifecycle runs, one type per mode: in the builder
// (directHost), in the builder with the app bound at /workspace
// (bindHost), or in containers made from a pulled builder (pulledHost).
type host interface {
	// setup points the inputs and the runner at this host (paths, env,
	// how a process starts) and returns what undoes it.
	setup(in *creator.CreateInputs, r *creator.Runner, d Deps) (undo func(), err error)
	// execute runs the lifecycle and returns the platform API it used.
	execute(ctx context.Context, r *creator.Runner, b *creator.Builder, in creator.CreateInputs, candidates []string) (string, []creator.PhaseTiming, error)
}

// inBuilderHost picks the in-builder host: the app bound at /workspace
// when it lives elsewhere and a private mount namespace can be made
// (root, CAP_SYS_ADMIN, a /workspace to bind over), else the lifecycle
// as a plain child, and the log says why.
func inBuilderHost(in creator.CreateInputs, d Deps) host {
	if in.AppDir == sbApp {
		return directHost{}
	}
	why := bindable(in, d)
	if why == "" {
		fmt.Fprintf(d.Log, "cipack: the app is at %s: bound at /workspace, where the image will work\n", in.AppDir)
		return bindHost{self: d.Self, tmp: d.TempDir}
	}
	fmt.Fprintf(d.Log, "cipack: note: the image's working directory will be %s, not /workspace: %s\n", in.AppDir, why)
	return directHost{}
}

func bindable(in creator.CreateInputs, d Deps) string {
	if d.Euid != 0 {
		return "binding it there needs root"
	}
	// Builder images (pack makes them so) have a /workspace to bind over;
	// cipack does not make one on a filesystem it does not own.
	if fi, err := os.Stat(sbApp); err != nil || !fi.IsDir() {
		return "there is no /workspace directory here to bind it over"
	}
	if under(in.LayersDir) || under(in.PlatformDir) {
		return "the layers or platform dir is under /workspace"
	}
	if err := sandbox.Probe(d.Self); err != nil {
		return fmt.Sprintf("no private mount namespace for the bind here (%v; a container without CAP_SYS_ADMIN?); pull mode always gives /workspace", err)
	}
	return ""
}

func under(p string) bool { return p == sbApp || strings.HasPrefix(p, sbApp+"/") }

// directHost runs the creator as cipack's child, on this filesystem.
type directHost struct{}

func (directHost) setup(in *creator.CreateInputs, r *creator.Runner, d Deps) (func(), error) {
	r.Environ = lifecycleEnv(d.Environ)
	if d.Euid != 0 && in.RegistryAuth != "" {
		fmt.Fprintf(d.Log, "cipack: warning: cipack runs as uid %d, not root, so the lifecycle cannot drop privileges before build code runs: "+
			"buildpacks run as the same user and could read the registry credentials from the lifecycle's environment. "+
			"Run the step as root (GitHub: container options: --user 0; Tekton: securityContext.runAsUser: 0): cipack then runs buildpacks as %d:%d with no access to them.\n",
			d.Euid, in.UID, in.GID)
	}
	return func() {}, nil
}

func (directHost) execute(ctx context.Context, r *creator.Runner, b *creator.Builder, in creator.CreateInputs, candidates []string) (string, []creator.PhaseTiming, error) {
	return runCreator(ctx, r, b, in, candidates)
}

// runCreator runs the creator, trying the candidate APIs newest first.
func runCreator(ctx context.Context, r *creator.Runner, b *creator.Builder, in creator.CreateInputs, candidates []string) (string, []creator.PhaseTiming, error) {
	return r.RunNegotiated(ctx, candidates, func(api string) creator.Invocation {
		in.PlatformAPI = api
		return creator.PlanCreate(b, in)
	})
}

// bindHost runs the creator in a private mount and PID namespace where
// the app is bound at /workspace (a CI's own checkout path would
// otherwise become the image's working directory). Every process the
// build starts dies with the namespace's first. A cache dir under
// /workspace would be hidden by the bind: it is bound at a temporary
// path instead.
type bindHost struct{ self, tmp string }

func (h bindHost) setup(in *creator.CreateInputs, r *creator.Runner, d Deps) (func(), error) {
	r.Environ = lifecycleEnv(d.Environ)
	var binds []sandbox.Bind
	undo := func() {}
	if in.CacheDir != "" {
		abs, err := filepath.Abs(in.CacheDir)
		if err != nil {
			return undo, err
		}
		if under(abs) {
			alias, err := os.MkdirTemp(h.tmp, "cipack-cache-")
			if err != nil {
				return undo, err
			}
			undo = func() { _ = os.Remove(alias) }
			binds = append(binds, sandbox.Bind{Host: abs, Path: alias})
			in.CacheDir = alias
		}
	}
	// Last: once the app covers /workspace, paths under it are hidden.
	binds = append(binds, sandbox.Bind{Host: in.AppDir, Path: sbApp})
	in.AppDir = sbApp
	r.Wrap = func(inv creator.Invocation, env []string) (*exec.Cmd, func(int) error, error) {
		cmd, done, err := sandbox.Wrap(h.self, sandbox.Spec{Binds: binds, Argv: append([]string{inv.Path}, inv.Args...), Env: env, Dir: sbApp})
		if err != nil {
			return nil, nil, err
		}
		return cmd, func(code int) error {
			done()
			if code == sandbox.SetupFailed {
				return errors.New("the /workspace bind could not be made")
			}
			return nil
		}, nil
	}
	return undo, nil
}

func (bindHost) execute(ctx context.Context, r *creator.Runner, b *creator.Builder, in creator.CreateInputs, candidates []string) (string, []creator.PhaseTiming, error) {
	return runCreator(ctx, r, b, in, candidates)
}
