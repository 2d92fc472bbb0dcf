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

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
	"github.com/cipack/cipack/internal/safefs"
)

// The store's layout under the --builder-cache directory (its root):
//
//	layers/<hex>/                  a layer's tree, <hex> its diffID's sha256
//	layers/<hex>.json              its completion marker (diffID and seal), written last
//	layers/.unpack-<hex>-<pid>/    a tree being extracted, renamed into place when whole
//	layers/.marker-<hex>-<pid>     a marker being written, renamed into place
//	locks/<hex>.lock               flock'ed while a layer is checked, unpacked or removed
//
// Everything is reached through an os.Root on the store's root, so a link
// planted inside the store (a restored CI cache may hold anything) can
// neither redirect a write nor a removal out of it.
const (
	layersDir    = "layers"
	locksDir     = "locks"
	unpackPrefix = ".unpack-"
	markerPrefix = ".marker-"
)

// store is an open layer store.
type store struct {
	dir  string   // the root's absolute path, for the paths handed out
	root *os.Root // every operation goes through it
	lim  safefs.Limits
}

// layerJob is one layer of one builder, named the way errors name it.
type layerJob struct {
	ref          string // the builder by digest
	index, count int    // 1-based
	layer        v1.Layer
}

func (j layerJob) String() string { return fmt.Sprintf("layer %d of %d", j.index, j.count) }

// layerResult is what ensure did for a layer.
type layerResult struct {
	path     string
	unpacked bool
	repaired string // why a stored tree was replaced, if one was
}

// openStore opens (making it if needed) the store at dir. Its root must be
// a real directory owned by cipack's user, and is set to mode 0700: whoever
// can write there decides what the builds run, so a directory someone
// else owns, or a symbolic link to one, is refused rather than repaired.
func openStore(dir string) (*store, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, storeError(dir, err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
		return nil, storeError(abs, err)
	}
	if err := os.Mkdir(abs, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, storeError(abs, err)
	}
	fi, err := checkStoreRoot(abs)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(abs)
	if err != nil {
		return nil, storeError(abs, err)
	}
	st := &store{dir: abs, root: root, lim: safefs.DefaultLimits}
	// The directory opened must be the one checked, not one swapped in
	// since; permissions are then fixed on what was opened.
	if got, err := root.Stat("."); err != nil || !os.SameFile(fi, got) {
		st.Close()
		return nil, storeError(abs, errors.New("the directory changed while cipack opened it"))
	}
	if err := st.onlyStore(); err != nil {
		st.Close()
		return nil, err
	}
	if fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0o700 {
		if err := root.Chmod(".", 0o700); err != nil {
			st.Close()
			return nil, storeError(abs, err)
		}
	}
	for _, d := range []string{layersDir, locksDir} {
		if err := st.realDir(d); err != nil {
			st.Close()
			return nil, storeError(abs, err)
		}
	}
	return st, nil
}

func checkStoreRoot(abs string) (fs.FileInfo, error) {
	const hint = "the builder cache decides what pull mode runs: point --builder-cache at a directory cipack's user owns, or remove this one"
	fi, err := os.Lstat(abs)
	if err != nil {
		return nil, storeError(abs, err)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, exit.New(exit.Sandbox, abs, errors.New("the builder cache is a symbolic link: cipack does not follow it"), hint)
	}
	if !fi.IsDir() {
		return nil, exit.New(exit.Sandbox, abs, errors.New("the builder cache is not a directory"), hint)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; int(uid) != os.Geteuid() {
		return nil, exit.New(exit.Sandbox, abs, fmt.Errorf("the builder cache is owned by uid %d, not by cipack's uid %d", uid, os.Geteuid()), hint)
	}
	return fi, nil
}

// onlyStore refuses a directory that holds anything but the store's own
// entries: the store changes its root's mode and replaces what is in its
// way, which must never happen to a directory given by mistake (a home,
// /var/cache, "/").
func (s *store) onlyStore() error {
	d, err := s.root.Open(".")
	if err != nil {
		return storeError(s.dir, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return storeError(s.dir, err)
	}
	for _, n := range names {
		if n != layersDir && n != locksDir {
			return exit.New(exit.Usage, s.dir, fmt.Errorf("not a cipack builder cache: it holds %q", n),
				"point --builder-cache at a directory of its own (it is made if missing)")
		}
	}
	return nil
}

func storeError(dir string, err error) error {
	return exit.New(exit.Sandbox, dir, fmt.Errorf("builder cache: %w", err), "check --builder-cache")
}

func (s *store) Close() error { return s.root.Close() }

// realDir makes sure name (in the store) is a real directory of mode 0700,
// replacing whatever else is there (a link, a file).
func (s *store) realDir(name string) error {
	fi, err := s.root.Lstat(name)
	if err == nil && !fi.IsDir() {
		if err := s.root.RemoveAll(name); err != nil {
			return err
		}
	}
	if err != nil || !fi.IsDir() {
		// Another build opening the store may make it first.
		if err := s.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if fi, err := s.root.Lstat(name); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", name)
		}
	}
	return s.root.Chmod(name, 0o700)
}

func treeName(hexID string) string   { return layersDir + "/" + hexID }
func markerName(hexID string) string { return layersDir + "/" + hexID + ".json" }

// ensure makes sure j's layer is in the store, verified, under its lock.
func (s *store) ensure(ctx context.Context, j layerJob) (layerResult, error) {
	diffID, err := j.layer.DiffID()
	if err != nil {
		return layerResult{}, registry.Classify(j.ref, "read "+j.String()+" of", err)
	}
	if diffID.Algorithm != "sha256" || !isHex64(diffID.Hex) {
		return layerResult{}, exit.New(exit.Sandbox, "builder "+j.ref, fmt.Errorf("%s has an unsupported diffID %q", j, diffID), "")
	}
	unlock, err := s.lock(ctx, diffID.Hex)
	if err != nil {
		return layerResult{}, fmt.Errorf("builder %s: %s (%s): %w", j.ref, j, diffID, err)
	}
	defer unlock()
	res := layerResult{path: filepath.Join(s.dir, layersDir, diffID.Hex)}
	why := s.verify(ctx, diffID)
	if why == "" {
		return res, nil
	}
	if err := ctx.Err(); err != nil { // a check cut short proves nothing: keep the tree
		return layerResult{}, fmt.Errorf("builder %s: %s (%s): %w", j.ref, j, diffID, err)
	}
	if why != absent {
		res.repaired = fmt.Sprintf("%s (%s): %s: unpacked again", j, diffID, why)
	}
	if err := s.discard(diffID.Hex); err != nil {
		return layerResult{}, fmt.Errorf("builder %s: %s (%s): remove the stored tree: %w", j.ref, j, diffID, err)
	}
	if err := s.unpack(ctx, j, diffID); err != nil {
		return layerResult{}, s.noSpace(j, err)
	}
	res.unpacked = true
	return res, nil
}

// noSpace names the store's directory when err is a full disk there
// (extracting, renaming or marking a layer), for exit.NoSpace's code.
func (s *store) noSpace(j layerJob, err error) error {
	if exit.Typed(err) {
		return err
	}
	if ns := exit.NoSpace(s.dir, err); ns != nil {
		return fmt.Errorf("builder %s: %w", j.ref, ns)
	}
	return err
}

// discard removes a layer's marker, then its tree: a tree left without a
// marker (killed in between) is discarded again next time.
func (s *store) discard(hexID string) error {
	if err := s.root.RemoveAll(markerName(hexID)); err != nil {
		return err
	}
	return s.root.RemoveAll(treeName(hexID))
}

// unpack extracts j's layer into a fresh directory while hashing the
// uncompressed stream, and keeps it only if the hash is the diffID the
// image's config names: renamed into place, sealed, then marked complete.
func (s *store) unpack(ctx context.Context, j layerJob, diffID v1.Hash) error {
	tmp := fmt.Sprintf("%s/%s%s-%d", layersDir, unpackPrefix, diffID.Hex, os.Getpid())
	// Under the lock, a directory of that name is a dead run's.
	if err := s.root.RemoveAll(tmp); err != nil {
		return fmt.Errorf("builder %s: %s (%s): %w", j.ref, j, diffID, err)
	}
	if err := s.root.Mkdir(tmp, 0o700); err != nil {
		return fmt.Errorf("builder %s: %s (%s): %w", j.ref, j, diffID, err)
	}
	kept := false
	defer func() {
		if !kept {
			_ = s.root.RemoveAll(tmp)
		}
	}()
	if err := s.extract(ctx, j, diffID, tmp); err != nil {
		return err
	}
	// The tree's root is the container's "/" where no higher layer has
	// one: it must be traversable by the build user.
	if err := s.root.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("builder %s: %s (%s): %w", j.ref, j, diffID, err)
	}
	if err := s.root.Rename(tmp, treeName(diffID.Hex)); err != nil {
		return fmt.Errorf("builder %s: %s (%s): %w", j.ref, j, diffID, err)
	}
	kept = true
	if err := s.complete(diffID); err != nil {
		return fmt.Errorf("builder %s: %s (%s): mark complete: %w", j.ref, j, diffID, err)
	}
	return nil
}

// extract fetches and extracts the layer into tmp, checking its diffID.
func (s *store) extract(ctx context.Context, j layerJob, diffID v1.Hash, tmp string) error {
	sub, err := s.root.OpenRoot(tmp)
	if err != nil {
		return fmt.Errorf("builder %s: %s (%s): %w", j.ref, j, diffID, err)
	}
	defer sub.Close()
	rc, err := j.layer.Uncompressed()
	if err != nil {
		return registry.Classify(j.ref, "fetch "+j.String()+" of", err)
	}
	defer rc.Close()
	// ExtractLayerRoot reads the stream to its end: the hash covers all
	// of it, and go-containerregistry checks the compressed blob's digest
	// when its reader reaches the end.
	h := sha256.New()
	_, err = safefs.ExtractLayerRoot(ctx, io.TeeReader(rc, h), sub, s.lim)
	switch {
	case errors.Is(err, safefs.ErrHostile) || errors.Is(err, safefs.ErrLimit):
		return exit.New(exit.Sandbox, "builder "+j.ref, fmt.Errorf("%s (%s) refused: %w", j, diffID, err),
			"the builder image holds what cipack does not unpack onto the host; rebuild the builder, or report it to its publisher")
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("builder %s: %s (%s): %w", j.ref, j, diffID, ctx.Err())
	case exit.IsNoSpace(err): // the store's disk, named by ensure: not the registry's fault
		return fmt.Errorf("unpack %s (%s): %w", j, diffID, err)
	case err != nil:
		return registry.Classify(j.ref, fmt.Sprintf("unpack %s (%s) of", j, diffID), err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != diffID.Hex {
		return exit.New(exit.Sandbox, "builder "+j.ref, fmt.Errorf("%s (%s) failed verification: its content hashes to sha256:%s", j, diffID, got),
			"the layer served is not the one the image's config names: the registry or the image is corrupt or tampered with")
	}
	return nil
}

// cleanStale removes what runs killed mid-unpack left: a leftover whose
// layer lock can be taken has no live writer.
func (s *store) cleanStale() error {
	d, err := s.root.Open(layersDir)
	if err != nil {
		return err
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, unpackPrefix)
		if !ok {
			rest, ok = strings.CutPrefix(n, markerPrefix)
		}
		if !ok {
			continue
		}
		hexID, _, _ := strings.Cut(rest, "-")
		if !isHex64(hexID) { // not a name cipack makes: nobody writes it
			if err := s.root.RemoveAll(layersDir + "/" + n); err != nil {
				return err
			}
			continue
		}
		unlock, err := s.tryLock(hexID)
		if err != nil {
			return err
		}
		if unlock == nil {
			continue // a live run is unpacking it
		}
		err = s.root.RemoveAll(layersDir + "/" + n)
		unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
