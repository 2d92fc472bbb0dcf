package build

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/cipack/cipack/internal/exit"
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

// handOver gives the app directory to the build user when cipack runs as
// root and the directory belongs to someone else (a CI checkout made by
// root or by another uid): buildpacks run as the builder's user and often
// write into the app dir. It changes nothing outside the app: symlinks are
// never followed (Lchown, and WalkDir does not descend through them), a
// file with more than one hard link keeps its owner (the other link may be
// outside the app), and other filesystems mounted inside are left alone.
// As a non-root user cipack leaves the directory as it is.
func handOver(dir string, uid, gid int, log io.Writer) error {
	if os.Geteuid() != 0 {
		return nil
	}
	var top syscall.Stat_t
	if err := syscall.Lstat(dir, &top); err != nil {
		return exit.Usagef("--path", "", "%v", err)
	}
	if int(top.Uid) == uid && int(top.Gid) == gid {
		return nil
	}
	fmt.Fprintf(log, "cipack: giving %s to the build user %d:%d\n", dir, uid, gid)
	var linked, mounts []string
	err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			return err
		}
		if st.Dev != top.Dev {
			mounts = append(mounts, p)
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !de.IsDir() && st.Nlink > 1 {
			linked = append(linked, p)
			return nil
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		return exit.Usagef("--path", "make the app directory writable by root, or run cipack as the build user", "hand the app to the build user: %v", err)
	}
	if len(linked) > 0 {
		fmt.Fprintf(log, "cipack: warning: %d hard-linked file(s) keep their owner, since another link may be outside the app (first: %s); the build user reads them only if their mode allows\n", len(linked), linked[0])
	}
	if len(mounts) > 0 {
		fmt.Fprintf(log, "cipack: warning: %d mount point(s) inside the app are left as they are (first: %s)\n", len(mounts), mounts[0])
	}
	return nil
}
