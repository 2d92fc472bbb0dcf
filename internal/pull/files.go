package pull

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Files is a read-only view of the builder's files across its layers,
// as the container will see them merged: the layers' trees, lowest first
// (Builder.Layers). It is how cipack reads the builder's descriptors
// (/cnb/order.toml, buildpack.toml, lifecycle.toml, run.toml) on the host.
//
// The files are the builder's, so nothing of them is trusted: a path is
// resolved component by component as overlayfs would (the topmost layer
// that has a name wins; a whiteout hides lower layers' entry, an opaque
// directory their directory), a symbolic link is resolved against the
// merged root (an absolute target starts again at the builder's "/", ".."
// stops there), at most maxLinks of them, and each layer is read through
// an os.Root on its tree. A link to /etc/shadow therefore reads the
// builder's /etc/shadow, if it has one, never the host's.
type Files []string

// maxFileRead bounds ReadFile: descriptors are a few KiB.
const maxFileRead = 1 << 20

// maxLinks bounds the symbolic links followed in one lookup (Linux's
// own limit).
const maxLinks = 40

// opaqueXattr marks an overlay directory that hides lower layers' one.
const opaqueXattr = "trusted.overlay.opaque"

// Stat describes p in the merged view, following symbolic links.
func (f Files) Stat(p string) (fs.FileInfo, error) {
	v := f.view()
	defer v.close()
	e, err := v.resolve(p)
	if err != nil {
		return nil, err
	}
	return e.fi, nil
}

// ReadFile reads the regular file p of the merged view, at most
// maxFileRead bytes. A FIFO, a device or a directory is refused, never
// opened.
func (f Files) ReadFile(p string) ([]byte, error) {
	v := f.view()
	defer v.close()
	e, err := v.resolve(p)
	if err != nil {
		return nil, err
	}
	if !e.fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("not a regular file (%s)", e.fi.Mode().Type())}
	}
	r, err := v.root(e.layer)
	if err != nil {
		return nil, err
	}
	fh, err := r.OpenFile(e.rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: p, Err: err}
	}
	defer fh.Close()
	if got, err := fh.Stat(); err != nil || !os.SameFile(got, e.fi) {
		return nil, &fs.PathError{Op: "open", Path: p, Err: errors.New("changed while read")}
	}
	if e.fi.Size() > maxFileRead {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("%d bytes, more than the %d read", e.fi.Size(), maxFileRead)}
	}
	b, err := io.ReadAll(io.LimitReader(fh, maxFileRead+1))
	if err == nil && len(b) > maxFileRead {
		err = fmt.Errorf("grew past %d bytes while read", maxFileRead)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: p, Err: err}
	}
	return b, nil
}

// view is one lookup's open layers, each opened when first needed.
type view struct {
	layers []string
	roots  []*os.Root
}

func (f Files) view() *view { return &view{layers: f, roots: make([]*os.Root, len(f))} }

func (v *view) close() {
	for _, r := range v.roots {
		if r != nil {
			r.Close()
		}
	}
}

func (v *view) root(i int) (*os.Root, error) {
	if v.roots[i] == nil {
		r, err := os.OpenRoot(v.layers[i])
		if err != nil {
			return nil, err
		}
		v.roots[i] = r
	}
	return v.roots[i], nil
}

// entry is a name found in the merged view: in layer (its topmost one for
// a directory), at rel in that layer's tree. dirs are, for a directory,
// the layers whose directory of that name is merged into it, top first.
type entry struct {
	layer int
	rel   string
	fi    fs.FileInfo
	dirs  []int
}

// resolve finds p in the merged view, following every symbolic link.
func (v *view) resolve(p string) (*entry, error) {
	top := make([]int, len(v.layers))
	for i := range top {
		top[i] = len(v.layers) - 1 - i
	}
	rootDir, err := v.rootEntry(top)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
	}
	stack := []*entry{rootDir} // the directories walked, the current one last
	todo := splitPath(p)
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		cur := stack[len(stack)-1]
		if name == ".." {
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		e, err := v.lookup(cur, name)
		if err != nil {
			return nil, &fs.PathError{Op: "stat", Path: p, Err: err}
		}
		switch {
		case e.fi.IsDir():
			stack = append(stack, e)
		case e.fi.Mode()&fs.ModeSymlink != 0:
			if links++; links > maxLinks {
				return nil, &fs.PathError{Op: "stat", Path: p, Err: syscall.ELOOP}
			}
			target, err := v.roots[e.layer].Readlink(e.rel)
			if err != nil {
				return nil, &fs.PathError{Op: "readlink", Path: p, Err: err}
			}
			if strings.HasPrefix(target, "/") {
				stack = stack[:1]
			}
			todo = append(splitPath(target), todo...)
		case len(todo) > 0:
			return nil, &fs.PathError{Op: "stat", Path: p, Err: syscall.ENOTDIR}
		default:
			return e, nil
		}
	}
	return stack[len(stack)-1], nil
}

func (v *view) rootEntry(layers []int) (*entry, error) {
	if len(layers) == 0 {
		return nil, errors.New("the builder has no layers")
	}
	r, err := v.root(layers[0])
	if err != nil {
		return nil, err
	}
	fi, err := r.Lstat(".")
	if err != nil {
		return nil, err
	}
	return &entry{layer: layers[0], rel: ".", fi: fi, dirs: layers}, nil
}

// lookup finds name in the merged directory dir, as overlayfs does: from
// the top layer down, through the layers where dir is a directory, the
// first non-directory wins unless a directory was found above it; a
// whiteout ends the search, and so does an opaque directory (after
// merging it). In each layer, the path to dir is a chain of real
// directories (that is what put the layer in dir.dirs), so os.Root
// follows no link on the way.
func (v *view) lookup(dir *entry, name string) (*entry, error) {
	rel := name
	if dir.rel != "." {
		rel = dir.rel + "/" + name
	}
	var merged *entry
	for _, i := range dir.dirs {
		r, err := v.root(i)
		if err != nil {
			return nil, err
		}
		fi, err := r.Lstat(rel)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if isWhiteout(fi) {
			break
		}
		if !fi.IsDir() {
			if merged == nil {
				return &entry{layer: i, rel: rel, fi: fi}, nil
			}
			break // a lower non-directory is hidden by the directory above
		}
		if merged == nil {
			merged = &entry{layer: i, rel: rel, fi: fi}
		}
		merged.dirs = append(merged.dirs, i)
		if isOpaque(r, rel) {
			break
		}
	}
	if merged == nil {
		return nil, fs.ErrNotExist
	}
	return merged, nil
}

// isWhiteout reports an overlay whiteout: a 0/0 character device.
func isWhiteout(fi fs.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0
}

// isOpaque reports whether the directory rel of r carries the overlay's
// opaque xattr. It is read on an open descriptor: os.Root offers no
// xattr call, and a path would leave the root's protection.
func isOpaque(r *os.Root, rel string) bool {
	d, err := r.OpenFile(rel, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return false
	}
	defer d.Close()
	sc, err := d.SyscallConn()
	if err != nil {
		return false
	}
	buf := make([]byte, 4)
	var n int
	var xerr error
	if err := sc.Control(func(fd uintptr) { n, xerr = unix.Fgetxattr(int(fd), opaqueXattr, buf) }); err != nil || xerr != nil {
		return false
	}
	return string(buf[:n]) == "y"
}

// splitPath splits a path into its names, dropping empty ones and ".".
func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(p, "/") {
		if s != "" && s != "." {
			out = append(out, s)
		}
	}
	return out
}
