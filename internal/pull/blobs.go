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
	"strings"
	"sync/atomic"
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

// The layout's entries cipack makes at the top of the directory, besides
// oci-layout and blobs/: its marker, and the trash what is discarded is
// renamed into (removed at the end, with ctx).
const (
	blobsMarker = ".cipack-blobs"
	trashDir    = ".cipack-trash"
	shaDir      = "blobs/sha256"
)

// blobCache is an open Blobs: roots on its top directory and on
// blobs/sha256, opened once, after the top was checked not to be a link,
// so that nothing swapped in later redirects a read, write or removal.
type blobCache struct {
	top  string   // the directory given, for messages
	root *os.Root // the top directory
	sha  *os.Root // blobs/sha256
	// owned: the directory carries cipack's marker, so prune may remove
	// what no layer of the builder names.
	owned bool
}

// blobsHint is what to do about a blob cache cipack does not use.
const blobsHint = "a restored cache may hold anything: point --builder-blobs at a real directory, or remove what is there"

// open makes the layout and opens it. The top directory is what a cache
// restore writes (the Action's $CACHE_DIR/blobs): a link there is
// refused, never followed (a prune through it would delete elsewhere).
// The layout's own directories under it came with the restore too: one
// that is not a real directory is replaced.
func (b Blobs) open() (*blobCache, error) {
	top := string(b)
	if err := os.MkdirAll(top, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	fi, err := os.Lstat(top)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, exit.New(exit.Sandbox, "--builder-blobs", fmt.Errorf("%s is a symbolic link: cipack does not follow it", top), blobsHint)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", top)
	}
	r, err := os.OpenRoot(top)
	if err != nil {
		return nil, err
	}
	c := &blobCache{top: top, root: r}
	if err := c.layout(fi); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// layout checks that the root opened is the directory fi describes (not
// one swapped in since the Lstat), claims it, and makes its entries.
func (c *blobCache) layout(fi fs.FileInfo) error {
	if got, err := c.root.Stat("."); err != nil || !os.SameFile(fi, got) {
		return exit.New(exit.Sandbox, "--builder-blobs", fmt.Errorf("%s changed while cipack opened it", c.top), blobsHint)
	}
	owned, err := c.claim()
	if err != nil {
		return err
	}
	c.owned = owned
	for _, d := range []string{"blobs", shaDir, trashDir} {
		if err := realDirIn(c.root, d); err != nil {
			return fmt.Errorf("%s/%s: %w", c.top, d, err)
		}
	}
	if c.sha, err = c.root.OpenRoot(shaDir); err != nil {
		return err
	}
	if _, err := c.root.Lstat("oci-layout"); errors.Is(err, fs.ErrNotExist) {
		return c.root.WriteFile("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
	}
	return nil
}

// claim reports whether the directory is cipack's blob cache, marking it
// so when it holds nothing but what cipack makes there (empty, or a cache
// from before the marker). prune removes every blob the builder does not
// name, which must never happen to an OCI layout of the user's given by
// mistake: its index.json (or anything else of theirs) keeps it unclaimed.
func (c *blobCache) claim() (bool, error) {
	if fi, err := c.root.Lstat(blobsMarker); err == nil {
		return fi.Mode().IsRegular(), nil
	}
	d, err := c.root.Open(".")
	if err != nil {
		return false, err
	}
	names, err := d.Readdirnames(16) // a few names decide it
	d.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return false, err
	}
	for _, n := range names {
		if n != "oci-layout" && n != "blobs" && n != trashDir {
			return false, nil
		}
	}
	return true, c.root.WriteFile(blobsMarker, []byte("cipack's builder blob cache: blobs the last builder does not name are removed\n"), 0o644)
}

func (c *blobCache) Close() {
	if c.sha != nil {
		c.sha.Close()
	}
	c.root.Close()
}

// realDirIn makes name a real directory of mode 0755 in r, replacing
// whatever else is there (a link, a file: one unlink).
func realDirIn(r *os.Root, name string) error {
	fi, err := r.Lstat(name)
	if err == nil && fi.IsDir() {
		return nil
	}
	if err == nil {
		if err := r.Remove(name); err != nil {
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
// file, and returns what it opened (fi, also when that is not a regular
// file). O_NONBLOCK keeps the open of a FIFO planted in a restored cache
// from waiting forever for a writer (and a blocked open cannot be
// canceled); it changes nothing for a regular file's reads. O_NOFOLLOW
// and the root keep a planted link from being followed.
func openBlob(r *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|noFollow, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file (%s)", name, fi.Mode().Type())
	}
	if err != nil {
		f.Close()
		return nil, fi, err
	}
	return f, fi, nil
}

// verified reports whether the blob of d is there, a regular file of at
// most size bytes whose content hashes to d. Anything else at its name
// (a wrong blob, a directory, a FIFO, a link) is discarded, so that it is
// fetched again. The hash reads at most size+1 bytes and stops with ctx:
// a hash cut short proves nothing, and the blob is kept.
func (c *blobCache) verified(ctx context.Context, d v1.Hash, size int64) bool {
	f, fi, err := openBlob(c.sha, d.Hex)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			_ = c.discard(d.Hex, fi)
		}
		return false
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, io.LimitReader(ctxReader{ctx, f}, size+1))
	if ctx.Err() != nil {
		return false
	}
	if err != nil || n != size || hex.EncodeToString(h.Sum(nil)) != d.Hex {
		_ = c.discard(d.Hex, fi)
		return false
	}
	return true
}

// fetchSeq makes the names of a process's temporary fetch files unique.
var fetchSeq atomic.Int64

// fetch copies l's compressed blob into the layout, hashing it on the
// way, through a temporary file renamed into place only when it matched.
func (c *blobCache) fetch(ctx context.Context, l v1.Layer, d v1.Hash) error {
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp := fmt.Sprintf(".fetch-%s-%d-%d", d.Hex[:12], os.Getpid(), fetchSeq.Add(1))
	f, err := c.sha.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer c.sha.Remove(tmp) // a no-op once renamed
	h := sha256.New()
	// Readable by the runner's user, who archives the cache, whatever
	// the umask.
	err = f.Chmod(0o644)
	if err == nil {
		_, err = io.Copy(io.MultiWriter(f, h), ctxReader{ctx, rc})
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		return exit.New(exit.Sandbox, "builder blob", fmt.Errorf("blob %s hashes to sha256:%s", d, got), "the registry served another blob than the manifest names")
	}
	// A directory at the blob's name (planted, or made since verified
	// looked) would refuse the rename: it goes first.
	if fi, err := c.sha.Lstat(d.Hex); err == nil && !fi.Mode().IsRegular() {
		if err := c.discard(d.Hex, fi); err != nil {
			return err
		}
	}
	return c.sha.Rename(tmp, d.Hex)
}

// layer is l served from the layout: its blob fetched (verified) when
// missing, then read from disk. The store checks what it unpacks against
// the diffID as for any layer.
func (c *blobCache) layer(ctx context.Context, l v1.Layer) (v1.Layer, error) {
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
	if !c.verified(ctx, d, size) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.fetch(ctx, l, d); err != nil {
			if ns := exit.NoSpace(c.top, err); ns != nil && !exit.Typed(err) {
				err = ns
			}
			return nil, fmt.Errorf("keep blob %s in %s: %w", d, c.top, err)
		}
	}
	return partial.CompressedToLayer(blobLayer{src: l, c: c, name: d.Hex})
}

// tidy removes the blobs no layer of layers names (an old builder's),
// where the directory is cipack's, then empties the trash.
func (c *blobCache) tidy(ctx context.Context, layers []v1.Layer) error {
	if c.owned {
		keep := map[string]bool{}
		for _, l := range layers {
			if d, err := l.Digest(); err == nil {
				keep[d.Hex] = true
			}
		}
		if err := c.prune(ctx, keep); err != nil {
			return err
		}
	}
	return c.emptyTrash(ctx)
}

// prune moves the blobs not in keep (and leftovers, dot names) to the
// trash: through the root, so a planted link is moved, never followed.
func (c *blobCache) prune(ctx context.Context, keep map[string]bool) error {
	d, err := c.sha.Open(".")
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !keep[n] || strings.HasPrefix(n, ".") {
			if err := c.aside(n); err != nil {
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
	c    *blobCache
	name string
}

func (l blobLayer) Digest() (v1.Hash, error)            { return l.src.Digest() }
func (l blobLayer) DiffID() (v1.Hash, error)            { return l.src.DiffID() }
func (l blobLayer) Size() (int64, error)                { return l.src.Size() }
func (l blobLayer) MediaType() (types.MediaType, error) { return l.src.MediaType() }

// Compressed opens the blob as verified did: it may have been swapped
// since (the cache is writable by the runner's user): what it holds then
// is caught by the store's diffID check of what it unpacks, and what is
// no longer a file there is the cache's failure (exit 13), as any other.
func (l blobLayer) Compressed() (io.ReadCloser, error) {
	f, _, err := openBlob(l.c.sha, l.name)
	if err != nil {
		return nil, exit.New(exit.Sandbox, "--builder-blobs", fmt.Errorf("%s: blob sha256:%s changed since it was verified: %w", l.c.top, l.name, err),
			"something writes to the blob cache while cipack builds: keep other writers away from it, and run again")
	}
	return f, nil
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
