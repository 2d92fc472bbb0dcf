package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/buildpack"
	"github.com/buildpacks/lifecycle/platform/files"

	"github.com/cipack/cipack/internal/creator"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/safefs"
	"github.com/cipack/cipack/internal/scratch"
)

// workdirs are the directories the prepare stage made for one build, and
// what it wrote in them.
type workdirs struct {
	app, platform, layers string
	// analyzed holds analyzed.toml in pull mode's split: writable by the
	// credential phases only. report holds report.toml there: bound into
	// the exporter's container alone, never into build code's.
	analyzed, report string
	order, runToml   string
	// fp is the build's fingerprint, recorded in the image.
	fp fingerprint
	// buildpacks is the buildpacks dir assembled in the builder when the
	// user added buildpacks (empty: the builder's own).
	buildpacks string
	// extra are the added buildpacks' directories (both modes), extraIDs
	// their id@version.
	extra, extraIDs []string
	// detectOrder is the order cipack wrote for the detector (nil: the
	// builder's), kept here: build code may rewrite the file.
	detectOrder buildpack.Order
	// project is the project-metadata.toml cipack wrote: the image's
	// record must say the same.
	project []byte
	undo    []func()
}

// cleanup removes what prepare made (safe on a partial workdirs).
func (w *workdirs) cleanup() {
	if w == nil {
		return
	}
	for i := len(w.undo) - 1; i >= 0; i-- {
		w.undo[i]()
	}
}

// prepare makes the build's directories: the platform dir (build env,
// run.toml, the descriptor's order), the app the lifecycle gets (a copy
// owned by the build user as root), the layers dir (fresh in pull mode)
// and the cache dir.
func prepare(ctx context.Context, p *buildPlan, opts Options, d Deps) (*workdirs, error) {
	w := &workdirs{}
	var descEnv []string
	if p.desc != nil {
		descEnv = p.desc.BuildEnv(opts.ExecEnv)
	}
	// project.toml first, then the env files, then --env: later ones win.
	env := append(append(append([]string{}, descEnv...), opts.fileEnv...), opts.Env...)
	var err error
	if w.platform, err = writePlatformDir(d.TempDir, env, p.uid, p.gid, d.Euid == 0); err != nil {
		return w, err
	}
	w.undo = append(w.undo, func() { _ = os.RemoveAll(w.platform) })
	if err := w.extraBuildpacks(ctx, p, opts, d); err != nil {
		return w, err
	}
	if opts.RunImage != "" || p.host != nil {
		// Pull mode always writes one: the trusted phases run in a root
		// without the builder's files.
		if w.runToml, err = writeRunToml(w.platform, opts.RunImage, p.builder.RunImage); err != nil {
			return w, err
		}
	}
	app, undoApp, err := prepareApp(d.TempDir, p.appDir, p.desc, p.uid, p.gid, d.Euid == 0, d.Log)
	if err != nil {
		return w, err
	}
	w.app = app
	w.undo = append(w.undo, undoApp)
	if err := w.makeLayers(d.TempDir, opts, p.host != nil); err != nil {
		return w, err
	}
	if p.host != nil && p.host.trusted != nil {
		if w.analyzed, err = w.makeUserDir(d.TempDir, "cipack-analyzed-", p.uid, p.gid); err != nil {
			return w, err
		}
		if w.report, err = w.makeUserDir(d.TempDir, "cipack-report-", p.uid, p.gid); err != nil {
			return w, err
		}
	}
	if opts.CacheDir != "" {
		if err := os.MkdirAll(opts.CacheDir, 0o755); err != nil {
			return w, exit.Usagef("--cache-dir", "make it writable, or use --cache-image", "%v", err)
		}
	}
	if err := p.checked(); err != nil {
		return w, err
	}
	if w.fp, err = makeFingerprint(p, w, opts, env); err != nil {
		return w, err
	}
	w.project, err = writeProjectMetadata(w.layers, opts.SourceRepository, opts.SourceCommit, w.fp)
	return w, err
}

// makeLayers makes the layers dir: --layers-dir in the builder, a fresh
// one bound at /layers in pull mode. A stale report never passes for
// this build's.
func (w *workdirs) makeLayers(tmp string, opts Options, pulled bool) error {
	var err error
	if pulled {
		if w.layers, err = scratch.Dir(tmp, "cipack-layers-"); err != nil {
			return err
		}
		w.undo = append(w.undo, func() { _ = os.RemoveAll(w.layers) })
		// The exported image records /layers' mode: the same as in-builder.
		if err := os.Chmod(w.layers, 0o755); err != nil {
			return err
		}
	} else if w.layers, err = filepath.Abs(opts.LayersDir); err != nil {
		return exit.Usagef("--layers-dir", "", "%v", err)
	}
	if err := os.MkdirAll(w.layers, 0o755); err != nil {
		return exit.Usagef("--layers-dir", "make it writable", "%v", err)
	}
	_ = os.Remove(filepath.Join(w.layers, "report.toml"))
	return nil
}

// makeUserDir makes a directory the credential phases write after they
// drop to the build user (analyzed.toml's, report.toml's), owned by that
// user; build code gets it read-only or not at all.
func (w *workdirs) makeUserDir(tmp, prefix string, uid, gid int) (string, error) {
	dir, err := scratch.Dir(tmp, prefix)
	if err != nil {
		return "", err
	}
	w.undo = append(w.undo, func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	return dir, os.Chown(dir, uid, gid)
}

// reportPath is where the exporter writes report.toml, on this host.
func (w *workdirs) reportPath() string {
	if w.report != "" {
		return filepath.Join(w.report, "report.toml")
	}
	return filepath.Join(w.layers, "report.toml")
}

// inputs are the creator's inputs for this build, with host paths.
func (w *workdirs) inputs(p *buildPlan, opts Options) creator.CreateInputs {
	in := creator.CreateInputs{
		Order:         w.order,
		BuildpacksDir: w.buildpacks,
		ExecEnv:       opts.ExecEnv,
		RunToml:       w.runToml,
		Image:         p.staging.String(),
		AppDir:        w.app,
		LayersDir:     w.layers,
		PlatformDir:   w.platform,
		ReportPath:    w.reportPath(),
		CacheImage:    opts.CacheImage,
		CacheDir:      opts.CacheDir,
		PreviousImage: opts.PreviousImage,
		ProcessType:   opts.ProcessType,
		UID:           p.uid,
		GID:           p.gid,
		Insecure:      opts.Insecure,
		LogLevel:      opts.LogLevel,
		RegistryAuth:  p.auth,
	}
	// The lifecycle exports under the staging tag alone (cipack moves the
	// user's tags once the image passed its checks) and reuses layers and
	// cache metadata from the image the user's tag holds.
	if in.PreviousImage == "" {
		in.PreviousImage = p.refs.image.String()
	}
	if w.analyzed != "" {
		in.AnalyzedPath = filepath.Join(w.analyzed, "analyzed.toml")
	}
	return in
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
func writePlatformDir(tmp string, env []string, uid, gid int, root bool) (string, error) {
	dir, err := scratch.Dir(tmp, platformPrefix)
	if err != nil {
		return "", fmt.Errorf("create platform dir: %w", err)
	}
	owned := func(p string, mode os.FileMode) error {
		if err := os.Chmod(p, mode); err != nil {
			return err
		}
		if root {
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

// writeProjectMetadata writes the lifecycle's project-metadata.toml in the
// layers dir (where the exporter reads it by default), in the lifecycle's
// own type: a git source with its commit and repository when known, and
// the build's fingerprint (what --skip-unchanged compares). It is written
// fresh every build, so no build inherits another's.
func writeProjectMetadata(layersDir, repository, commit string, fp fingerprint) ([]byte, error) {
	p := filepath.Join(layersDir, "project-metadata.toml")
	src := &files.ProjectSource{Version: map[string]interface{}{}, Metadata: map[string]interface{}{
		fingerprintKey: map[string]interface{}{"app": fp.App, "builder": fp.Builder, "runImage": fp.RunImage, "inputs": fp.Inputs},
	}}
	if repository != "" || commit != "" {
		src.Type = "git"
	}
	if commit != "" {
		src.Version["commit"] = commit
	}
	if repository != "" {
		src.Metadata["repository"] = repository
	}
	// The layers dir may be a reused one build code wrote to: never
	// write through what it left there.
	var buf bytes.Buffer
	if err := toml.NewEncoder(&buf).Encode(files.ProjectMetadata{Source: src}); err != nil {
		return nil, fmt.Errorf("write project metadata: %w", err)
	}
	f, err := safefs.CreateFresh(p, 0o644)
	if err != nil {
		return nil, fmt.Errorf("write project metadata: %w", err)
	}
	defer f.Close()
	if _, err := f.Write(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("write project metadata: %w", err)
	}
	return buf.Bytes(), f.Close()
}
