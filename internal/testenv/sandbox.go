package testenv

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Mounts are the host directories that stand for a builder container's
// fixed paths.
type Mounts struct {
	CNB       string // → /cnb
	Layers    string // → /layers
	Workspace string // → /workspace
}

// InBuilder returns a command that runs argv as if inside the builder
// image: in a private mount namespace (unshare -m) with the builder's /cnb,
// a fresh /layers and the app at /workspace bind-mounted, so the image the
// lifecycle exports records the same paths a real builder container would.
func InBuilder(ctx context.Context, m Mounts, argv ...string) *exec.Cmd {
	return InSandbox(ctx, []Bind{{m.CNB, "/cnb"}, {m.Layers, "/layers"}, {m.Workspace, "/workspace"}}, argv...)
}

// Bind mounts a host directory at a path inside the sandbox.
type Bind struct{ Host, Path string }

// InSandbox runs argv in a private mount namespace with binds applied in
// order. This is how tests stand in for a container's volumes without a
// container engine. A mount point missing on the host is made here and
// recorded: RemoveMountPoints takes it away after the run, so the host's
// root keeps nothing new.
func InSandbox(ctx context.Context, binds []Bind, argv ...string) *exec.Cmd {
	for _, b := range binds {
		notePoint(b.Path)
	}
	script := "set -e\n"
	args := []string{"-m", "--propagation", "private", "--", "/bin/sh", "-c", "", "cipack-sandbox"}
	for i, b := range binds {
		n := strconv.Itoa(2*i + 1)
		script += `mkdir -p "${` + strconv.Itoa(2*i+2) + `}" && mount --bind "${` + n + `}" "${` + strconv.Itoa(2*i+2) + `}"` + "\n"
		args = append(args, b.Host, b.Path)
	}
	script += "shift " + strconv.Itoa(2*len(binds)) + "\nexec \"$@\""
	args[6] = script
	return exec.CommandContext(ctx, "unshare", append(args, argv...)...)
}

// Unpack pulls ref and writes its flattened filesystem under dir.
func Unpack(ctx context.Context, ref, dir string) (*v1.ConfigFile, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	img, err := remote.Image(r, remote.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	rc := mutate.Extract(img)
	defer rc.Close()
	if err := untar(rc, dir); err != nil {
		return nil, fmt.Errorf("unpack %s: %w", ref, err)
	}
	return cf, nil
}

// RunImageProcess pulls ref, unpacks its filesystem into dir and starts
// /cnb/process/<process> in a chroot as the image's user, with the image's
// env. It returns what the process printed. No container engine needed.
func RunImageProcess(ctx context.Context, ref, process, dir string) (string, error) {
	cf, err := Unpack(ctx, ref, dir)
	if err != nil {
		return "", err
	}
	user := cf.Config.User
	if user == "" {
		user = "0:0"
	}
	if !strings.Contains(user, ":") {
		user += ":" + user
	}
	cmd := exec.CommandContext(ctx, "chroot", "--userspec="+user, dir, "/cnb/process/"+process)
	cmd.Env = cf.Config.Env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("run %s process %s: %w\n%s", ref, process, err, out)
	}
	return string(out), nil
}

func untar(r io.Reader, dir string) error {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		target := filepath.Join(dir, filepath.Clean("/"+h.Name))
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, os.FileMode(h.Mode).Perm()); err != nil {
				return err
			}
			mode := os.FileMode(h.Mode).Perm()
			if h.Mode&0o1000 != 0 {
				mode |= os.ModeSticky
			}
			_ = os.Chmod(target, mode)
		case tar.TypeSymlink:
			_ = os.Remove(target)
			if err := os.Symlink(h.Linkname, target); err != nil {
				return err
			}
			_ = os.Lchown(target, h.Uid, h.Gid)
			continue
		case tar.TypeLink:
			_ = os.Remove(target)
			if err := os.Link(filepath.Join(dir, filepath.Clean("/"+h.Linkname)), target); err != nil {
				return err
			}
			continue
		case tar.TypeReg:
			f, err := os.OpenFile(target, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, os.FileMode(h.Mode).Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(f, tr); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			_ = os.Chmod(target, os.FileMode(h.Mode).Perm())
		default:
			continue
		}
		if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
			return err
		}
	}
}

var mountPoints struct {
	sync.Mutex
	made []string // top-level directories made at the host's root, in order
}

// notePoint makes path (a mount point) if it is missing, remembering the
// topmost directory it had to make.
func notePoint(path string) {
	mountPoints.Lock()
	defer mountPoints.Unlock()
	top := "/" + strings.SplitN(strings.TrimPrefix(filepath.Clean(path), "/"), "/", 2)[0]
	if _, err := os.Lstat(top); err == nil {
		_ = os.MkdirAll(path, 0o755)
		return
	}
	if err := os.MkdirAll(path, 0o755); err == nil {
		mountPoints.made = append(mountPoints.made, top)
	}
}

// RemoveMountPoints removes the directories InSandbox made at the host's
// root, and fails if one is not empty (something wrote through it on the
// host) or if the root holds any entry it did not hold at before.
func RemoveMountPoints(before map[string]bool) error {
	mountPoints.Lock()
	made := mountPoints.made
	mountPoints.made = nil
	mountPoints.Unlock()
	var problems []string
	for _, top := range made {
		if err := removeEmptyTree(top); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if before != nil {
		for name := range RootEntries() {
			if !before[name] {
				problems = append(problems, "/"+name+" is new at the host's root")
			}
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("the tests left litter: %s", strings.Join(problems, "; "))
	}
	return nil
}

// RootEntries lists the names at the host's root.
func RootEntries() map[string]bool {
	out := map[string]bool{}
	entries, _ := os.ReadDir("/")
	for _, e := range entries {
		out[e.Name()] = true
	}
	return out
}

// removeEmptyTree removes dir and its subdirectories if they hold no
// file: directories only, deepest first, never following a link.
func removeEmptyTree(dir string) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return fmt.Errorf("%s holds %s", dir, p)
		}
		dirs = append(dirs, p)
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}
