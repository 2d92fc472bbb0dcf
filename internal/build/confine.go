package build

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/project"
	"github.com/cipack/cipack/internal/safefs"
	"github.com/cipack/cipack/internal/scratch"
)

// System directories an app never lives in. The build hands the app dir
// to the build user and copies it into the image, so a path that lands
// here would give away or publish the machine's own files.
var (
	systemTrees = []string{"/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
		"/dev", "/proc", "/sys", "/boot", "/run", "/cnb", "/layers", "/platform"}
	systemDirs = []string{"/", "/var", "/var/lib", "/home", "/tmp", "/root", "/opt", "/srv", "/mnt", "/media"}
)

// ResolveApp turns the --path input into the directory the lifecycle gets:
// symlinks resolved (so the lifecycle sees the app's files, not a link),
// then checked to lie inside root (the CI workspace, or --source-root),
// and never in a system directory, whatever root says.
func ResolveApp(path, root string) (string, error) {
	const hint = "point --path at the app inside the CI workspace, or name another workspace with --source-root"
	realRoot, err := realDir(root)
	if err != nil {
		return "", exit.Usagef("--source-root", "name the directory the app is checked out in", "source root %q: %v", root, err)
	}
	app, err := realDir(orDot(path))
	if err != nil {
		return "", exit.Usagef("--path", "point it at the app's source directory", "app path %q: %v", orDot(path), err)
	}
	if isSystem(app) {
		return "", exit.Usagef("--path", "point --path at the app's own directory", "app path %q resolves to %s, a system directory", orDot(path), app)
	}
	if app != realRoot && !strings.HasPrefix(app, strings.TrimSuffix(realRoot, "/")+"/") {
		return "", exit.Usagef("--path", hint, "app path %q resolves to %s, outside the source root %s", orDot(path), app, realRoot)
	}
	return app, nil
}

func realDir(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return "", unwrapPath(err)
	}
	fi, err := os.Stat(real)
	if err != nil {
		return "", unwrapPath(err)
	}
	if !fi.IsDir() {
		return "", errors.New("not a directory")
	}
	return real, nil
}

func isSystem(p string) bool {
	for _, d := range systemDirs {
		if p == d {
			return true
		}
	}
	for _, t := range systemTrees {
		if p == t || strings.HasPrefix(p, t+"/") {
			return true
		}
	}
	return false
}

// prepareApp returns the app directory the lifecycle gets. As root, a
// copy owned by the build user (buildpacks run as that user and write
// into the app dir, and the user's checkout must stay as it was: same
// owners, modes and files), filtered by project.toml's include/exclude.
// As another user, the app itself (the lifecycle runs as that user), or
// a filtered copy when the descriptor narrows it. The copy never follows
// a link out of the app and leaves out what could leak another file:
// hard links (as root), FIFOs, devices, other mounts.
func prepareApp(tmp, app string, desc *project.Descriptor, uid, gid int, root bool, log io.Writer) (string, func(), error) {
	nothing := func() {}
	if !root && !desc.Filters() {
		return app, nothing, nil
	}
	dir, err := scratch.Dir(tmp, appPrefix)
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(dir) }
	dst := filepath.Join(dir, "app")
	subject := "--path"
	if desc.Filters() {
		subject = desc.Path
	}
	stats, err := safefs.CopyTree(app, dst, safefs.CopyOptions{Filter: desc.Filter(), SkipHardLinks: root, PruneEmptyDirs: desc.Filters(),
		KeepDir: desc.KeepEmptyDir(), Chown: root, UID: uid, GID: gid})
	if ns := exit.NoSpace(tmp, err); ns != nil { // the temp dir's disk, not the app, is at fault
		cleanup()
		return "", nil, fmt.Errorf("copy the app for the build: %w", ns)
	}
	if err != nil {
		cleanup()
		return "", nil, exit.Usagef(subject, "make the app readable, and check the include/exclude patterns", "copy the app for the build: %v", err)
	}
	if root {
		if err := os.Chown(dir, uid, gid); err != nil {
			cleanup()
			return "", nil, err
		}
	}
	for _, w := range []struct {
		what string
		list []string
	}{{"hard-linked file(s) left out of the build, since another link may be outside the app", stats.SkippedLinks},
		{"special file(s) (FIFO, socket, device) left out of the build", stats.Skipped},
		{"mount point(s) inside the app left out of the build", stats.Mounts}} {
		if len(w.list) > 0 {
			fmt.Fprintf(log, "cipack: warning: %d %s (first: %s)\n", len(w.list), w.what, w.list[0])
		}
	}
	return dst, cleanup, nil
}

// appPrefix names the app copies in the temp dir.
const appPrefix = "cipack-app-"
