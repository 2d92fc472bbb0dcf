package pull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipack/cipack/internal/exit"
)

// Blobs is a directory of the builder's compressed layer blobs in the OCI
// image layout (oci-layout, blobs/sha256/<hex>), readable by any user:
// what a CI cache saves and restores (actions/cache runs as the runner's
// user and cannot read the root-only store). The store is unpacked from
// it instead of the registry when a blob is there; every blob is hashed
// against its digest before use, so a restored cache is never trusted as
// is, and one that fails is fetched again.
type Blobs string

// path is where the blob of digest d lives.
func (b Blobs) path(d v1.Hash) string { return filepath.Join(b.dir(), d.Hex) }

// dir is the layout's blobs/sha256 directory.
func (b Blobs) dir() string { return filepath.Join(string(b), "blobs", "sha256") }

// init makes the layout: world-readable directories, the oci-layout file.
// The directory given is the user's (it may be a link they made); the
// layout's own directories under it came with a restored cache, so one
// that is not a real directory (a link, a file, a FIFO) is replaced
// rather than followed or left to fail every later build.
func (b Blobs) init() error {
	if err := os.MkdirAll(string(b), 0o755); err != nil {
		return err
	}
	if fi, err := os.Stat(string(b)); err != nil || !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", b)
	}
	r, err := os.OpenRoot(string(b))
	if err != nil {
		return err
	}
	defer r.Close()
	for _, d := range []string{"blobs", "blobs/sha256"} {
		if err := realDirIn(r, d); err != nil {
			return fmt.Errorf("%s: %w", filepath.Join(string(b), d), err)
		}
	}
	if _, err := r.Lstat("oci-layout"); errors.Is(err, fs.ErrNotExist) {
		return r.WriteFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	}
	return nil
}

// realDirIn makes name a real directory of mode 0755 in r, replacing
// whatever else is there.
func realDirIn(r *os.Root, name string) error {
	fi, err := r.Lstat(name)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		if err := r.RemoveAll(name); err != nil {
			return err
		}
	}
	if err := r.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if fi, err := r.Lstat(name); err != nil || !fi.IsDir() {
		return errors.New("not a directory")
	}
	return nil
}

// openBlob opens the blob file name in r for reading, if it is a regular
// file. O_NONBLOCK keeps the open of a FIFO planted in a restored cache
// from waiting forever for a writer (and a blocked open cannot be
// canceled); it changes nothing for a regular file's reads. O_NOFOLLOW
// and the root keep a planted link from being followed.
func openBlob(r *os.Root, name string) (*os.File, error) {
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|noFollow, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// verified reports whether the blob of d is there, a regular file of at
// most size bytes whose content hashes to d. Anything else at its name
// (a wrong blob, a directory, a FIFO, a link) is removed, so that it is
// fetched again. The hash reads at most size+1 bytes and stops with ctx.
func (b Blobs) verified(ctx context.Context, d v1.Hash, size int64) bool {
	r, err := os.OpenRoot(b.dir())
	if err != nil {
		return false
	}
	defer r.Close()
	f, err := openBlob(r, d.Hex)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			_ = r.RemoveAll(d.Hex)
		}
		return false
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(ctxReader{ctx, f}, size+1))
	if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != d.Hex {
		_ = r.RemoveAll(d.Hex)
		return false
	}
	return true
}

// fetch copies l's compressed blob into the layout, hashing it on the
// way, through a temporary file renamed into place only when it matched.
func (b Blobs) fetch(ctx context.Context, l v1.Layer, d v1.Hash) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(b.dir(), ".fetch-"+d.Hex[:12]+"-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, rc})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return exit.New(exit.Sandbox, "builder blob", fmt.Errorf("blob %s hashes to sha256:%s", d, got), "the registry served another blob than the manifest names")
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	r, err := os.OpenRoot(b.dir())
	if err != nil {
		return err
	}
	defer r.Close()
	// A directory at the blob's name (planted, or made since verified
	// looked) would refuse the rename: it goes first.
	if fi, err := r.Lstat(d.Hex); err == nil && !fi.Mode().IsRegular() {
		if err := r.RemoveAll(d.Hex); err != nil {
			return err
		}
	}
	return r.Rename(filepath.Base(tmp.Name()), d.Hex)
}

// layer is l served from the layout: its blob fetched (verified) when
// missing, then read from disk. The store checks what it unpacks against
// the diffID as for any layer.
func (b Blobs) layer(ctx context.Context, l v1.Layer) (v1.Layer, error) {
	d, err := l.Digest()
	if err != nil {
		return nil, err
	}
	if d.Algorithm != "sha256" || !isHex64(d.Hex) {
		return nil, exit.New(exit.Sandbox, "builder blob", fmt.Errorf("unsupported layer digest %q", d), "")
	}
	size, err := l.Size()
	if err != nil {
		return nil, err
	}
	if !b.verified(ctx, d, size) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.fetch(ctx, l, d); err != nil {
			if ns := exit.NoSpace(string(b), err); ns != nil && exit.Code(err) == exit.Internal {
				err = ns
			}
			return nil, fmt.Errorf("keep blob %s in %s: %w", d, b, err)
		}
	}
	return partial.CompressedToLayer(blobLayer{src: l, dir: b.dir(), name: d.Hex})
}

// prune removes the blobs no layer of keep names (an old builder's),
// through a root: a planted link is removed, never followed.
func (b Blobs) prune(keep map[string]bool) error {
	r, err := os.OpenRoot(b.dir())
	if err != nil {
		return err
	}
	defer r.Close()
	d, err := r.Open(".")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if !keep[n] || strings.HasPrefix(n, ".") {
			if err := r.RemoveAll(n); err != nil {
				return err
			}
		}
	}
	return nil
}

// blobLayer reads a layer's compressed stream from its verified blob. It
// names the methods partial.CompressedToLayer needs and nothing more: a
// value that were a whole v1.Layer would be used as is, its Uncompressed
// going to the registry.
type blobLayer struct {
	src       v1.Layer
	dir, name string
}

func (l blobLayer) Digest() (v1.Hash, error)            { return l.src.Digest() }
func (l blobLayer) DiffID() (v1.Hash, error)            { return l.src.DiffID() }
func (l blobLayer) Size() (int64, error)                { return l.src.Size() }
func (l blobLayer) MediaType() (types.MediaType, error) { return l.src.MediaType() }

// Compressed opens the blob as verified did: it may have been swapped
// since (the cache is writable by the runner's user): what it holds then
// is caught by the store's diffID check of what it unpacks.
func (l blobLayer) Compressed() (io.ReadCloser, error) {
	r, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return openBlob(r, l.name)
}

// noFollow keeps a blob read from following a link planted in the cache.
const noFollow = syscall.O_NOFOLLOW

// ctxReader stops a copy when ctx is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
