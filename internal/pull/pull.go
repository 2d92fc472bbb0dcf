// Package pull is pull mode's first half: it resolves a builder image by
// digest (the child for this host's platform when it is an index), reads
// its config, and unpacks its layers into a cache keyed by layer, so that
// a new builder version unpacks only the layers that changed. The sandbox
// package then runs the lifecycle on those layers.
package pull

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// Builder is an unpacked builder image.
type Builder struct {
	Ref    string // the builder by digest
	Layers []string
	Env    []string
	// UID and GID are the builder's CNB_USER_ID and CNB_GROUP_ID ("" when
	// it sets none).
	UID, GID string
	Labels   map[string]string
	// Unpacked counts the layers unpacked by this call (the others were
	// in the cache).
	Unpacked int
}

// Prepare resolves ref for the host's platform, and makes sure each of
// its layers is unpacked under cacheDir/layers/<diffID>.
func Prepare(ctx context.Context, reg *registry.Client, ref, cacheDir string) (*Builder, error) {
	r, err := reg.Parse(ref)
	if err != nil {
		return nil, exit.Usagef("--builder", "", "invalid builder reference %q: %v", ref, err)
	}
	img, cf, err := reg.ConfigFor(ctx, r, registry.HostPlatform())
	if err != nil {
		return nil, err
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	b := &Builder{Ref: r.Context().Digest(digest.String()).String(), Env: cf.Config.Env, Labels: cf.Config.Labels}
	for _, e := range cf.Config.Env {
		if v, ok := strings.CutPrefix(e, "CNB_USER_ID="); ok {
			b.UID = v
		}
		if v, ok := strings.CutPrefix(e, "CNB_GROUP_ID="); ok {
			b.GID = v
		}
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, registry.Classify(ref, "read layers of", err)
	}
	for _, l := range layers {
		diffID, err := l.DiffID()
		if err != nil {
			return nil, err
		}
		dir := filepath.Join(cacheDir, "layers", diffID.Hex)
		if _, err := os.Stat(dir); err != nil {
			if err := unpackLayer(ctx, l, dir); err != nil {
				return nil, fmt.Errorf("builder %s: unpack layer %s: %w", ref, diffID, err)
			}
			b.Unpacked++
		}
		b.Layers = append(b.Layers, dir)
	}
	return b, nil
}

// unpackLayer extracts l into dir, written as an overlay lower layer:
// whiteouts become 0/0 character devices, opaque directories get the
// overlay's opaque xattr. It extracts into a temporary directory renamed
// into place, so a half-unpacked layer is never reused.
func unpackLayer(ctx context.Context, l v1.Layer, dir string) error {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".unpack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := extract(tmp, h, tr); err != nil {
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	return os.Rename(tmp, dir)
}

// extract writes one tar entry under root. Entry names are cleaned and
// kept inside root, and no path component that is a symlink is followed:
// a layer cannot write outside its directory.
func extract(root string, h *tar.Header, r io.Reader) error {
	name := path.Clean("/" + h.Name)
	if name == "/" {
		return nil
	}
	dirName, base := path.Split(name)
	if err := safeDirs(root, dirName); err != nil {
		return err
	}
	target := filepath.Join(root, name)
	if base == ".wh..wh..opq" {
		return syscall.Setxattr(filepath.Dir(target), "trusted.overlay.opaque", []byte("y"), 0)
	}
	if strings.HasPrefix(base, ".wh.") {
		wh := filepath.Join(filepath.Dir(target), strings.TrimPrefix(base, ".wh."))
		_ = os.RemoveAll(wh)
		return syscall.Mknod(wh, syscall.S_IFCHR, 0)
	}
	mode := os.FileMode(h.Mode).Perm() | os.FileMode(h.Mode)&(os.ModeSetuid|os.ModeSetgid|os.ModeSticky)
	switch h.Typeflag {
	case tar.TypeDir:
		if fi, err := os.Lstat(target); err == nil && !fi.IsDir() {
			if err := os.Remove(target); err != nil {
				return err
			}
		}
		if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
			return err
		}
	case tar.TypeReg:
		_ = os.Remove(target)
		f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	case tar.TypeSymlink:
		_ = os.Remove(target)
		if err := os.Symlink(h.Linkname, target); err != nil {
			return err
		}
		return os.Lchown(target, h.Uid, h.Gid)
	case tar.TypeLink:
		src := filepath.Join(root, path.Clean("/"+h.Linkname))
		if err := safeDirs(root, path.Dir(path.Clean("/"+h.Linkname))); err != nil {
			return err
		}
		_ = os.Remove(target)
		return os.Link(src, target)
	default:
		return nil // devices and fifos have no place in a builder
	}
	if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
		return err
	}
	return os.Chmod(target, mode)
}

// safeDirs makes sure each directory of dir under root exists and is a
// real directory, not a symlink that could lead out of root.
func safeDirs(root, dir string) error {
	cur := root
	for _, part := range strings.Split(strings.Trim(dir, "/"), "/") {
		if part == "" {
			continue
		}
		cur = filepath.Join(cur, part)
		fi, err := os.Lstat(cur)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := os.Mkdir(cur, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&os.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink inside the layer: refusing to write through it", strings.TrimPrefix(cur, root))
		case !fi.IsDir():
			return fmt.Errorf("%s is not a directory", strings.TrimPrefix(cur, root))
		}
	}
	return nil
}

// Files is a read-only view of the builder's files across its layers,
// top layer first, for reading the builder's descriptors on the host.
type Files []string

// Stat finds p in the topmost layer that has it, following symlinks
// across layers.
func (f Files) Stat(p string) (fs.FileInfo, error) {
	full, err := f.resolve(p, 0)
	if err != nil {
		return nil, err
	}
	return os.Stat(full)
}

// ReadFile reads p from the topmost layer that has it.
func (f Files) ReadFile(p string) ([]byte, error) {
	full, err := f.resolve(p, 0)
	if err != nil {
		return nil, err
	}
	return os.ReadFile(full)
}

func (f Files) resolve(p string, depth int) (string, error) {
	if depth > 16 {
		return "", fmt.Errorf("%s: too many symlinks", p)
	}
	p = path.Clean("/" + p)
	for i := len(f) - 1; i >= 0; i-- {
		full := filepath.Join(f[i], p)
		fi, err := os.Lstat(full)
		if err != nil {
			continue
		}
		if fi.Mode()&os.ModeCharDevice != 0 {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Rdev == 0 {
				return "", fs.ErrNotExist // a whiteout
			}
		}
		if fi.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(full)
			if err != nil {
				return "", err
			}
			if !path.IsAbs(target) {
				target = path.Join(path.Dir(p), target)
			}
			return f.resolve(target, depth+1)
		}
		return full, nil
	}
	return "", fs.ErrNotExist
}

// ID parses a numeric user or group id.
func ID(s string) (int, bool) {
	n, err := strconv.Atoi(s)
	return n, err == nil && n >= 0
}
