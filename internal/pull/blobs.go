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
func (b Blobs) path(d v1.Hash) string { return filepath.Join(string(b), "blobs", d.Algorithm, d.Hex) }

// init makes the layout: world-readable directories, the oci-layout file.
func (b Blobs) init() error {
	if err := os.MkdirAll(filepath.Join(string(b), "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	for _, d := range []string{string(b), filepath.Join(string(b), "blobs"), filepath.Join(string(b), "blobs", "sha256")} {
		fi, err := os.Lstat(d)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", d)
		}
	}
	p := filepath.Join(string(b), "oci-layout")
	if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
		return os.WriteFile(p, []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	}
	return nil
}

// verified reports whether the blob of d is there, a regular file whose
// content hashes to d. A blob that does not is removed.
func (b Blobs) verified(d v1.Hash) bool {
	p := b.path(d)
	f, err := os.OpenFile(p, os.O_RDONLY|noFollow, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		_ = os.Remove(p)
		return false
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != d.Hex {
		_ = os.Remove(p)
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
	tmp, err := os.CreateTemp(filepath.Dir(b.path(d)), ".fetch-"+d.Hex[:12]+"-")
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
	return os.Rename(tmp.Name(), b.path(d))
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
	if !b.verified(d) {
		if err := b.fetch(ctx, l, d); err != nil {
			return nil, fmt.Errorf("keep blob %s: %w", d, err)
		}
	}
	return partial.CompressedToLayer(blobLayer{src: l, path: b.path(d)})
}

// prune removes the blobs no layer of keep names (an old builder's).
func (b Blobs) prune(keep map[string]bool) error {
	dir := filepath.Join(string(b), "blobs", "sha256")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !keep[e.Name()] || strings.HasPrefix(e.Name(), ".") {
			if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
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
	src  v1.Layer
	path string
}

func (l blobLayer) Digest() (v1.Hash, error)            { return l.src.Digest() }
func (l blobLayer) DiffID() (v1.Hash, error)            { return l.src.DiffID() }
func (l blobLayer) Size() (int64, error)                { return l.src.Size() }
func (l blobLayer) MediaType() (types.MediaType, error) { return l.src.MediaType() }
func (l blobLayer) Compressed() (io.ReadCloser, error) {
	return os.OpenFile(l.path, os.O_RDONLY|noFollow, 0)
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
