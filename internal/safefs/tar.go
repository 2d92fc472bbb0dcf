package safefs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"time"
)

// Limits bound what one layer may cost, so a decompression bomb (a small
// blob that inflates to terabytes, or to millions of empty entries) fails
// instead of filling the disk or the inode table. A zero field takes its
// value from DefaultLimits.
type Limits struct {
	// MaxBytes bounds the uncompressed tar stream read (headers, file
	// content, skipped entries' data, the padding after the end), and
	// separately the file content written (a sparse entry can describe a
	// file far larger than its bytes in the stream).
	MaxBytes int64
	// MaxEntries bounds the number of tar headers.
	MaxEntries int
}

// DefaultLimits are generous for a builder's layers (the largest layers of
// Paketo's builders are well under 1 GiB and 100,000 files).
var DefaultLimits = Limits{MaxBytes: 16 << 30, MaxEntries: 1 << 20}

// ExtractStats counts what ExtractLayer did.
type ExtractStats struct {
	Entries   int   // tar headers read
	Files     int   // regular files written
	Dirs      int   // directories made or updated
	Symlinks  int   // symbolic links made
	Hardlinks int   // hard links made
	Whiteouts int   // whiteouts written as 0/0 character devices
	Opaque    int   // directories marked opaque
	Skipped   int   // devices, FIFOs and reserved .wh..wh.* names left out
	Bytes     int64 // file content written
	Read      int64 // bytes of the stream read, up to its end
}

// ErrHostile marks an entry refused for what it is (a name that leaves the
// layer, a whiteout of "..", a write through a link, a hard link to
// nothing), as opposed to a failure to read or write.
var ErrHostile = errors.New("hostile layer entry")

// ErrLimit marks a layer that went past its Limits.
var ErrLimit = errors.New("layer exceeds a limit")

// EntryError names the tar entry an extraction failed on.
type EntryError struct {
	Entry   string // the name as the tar stream gave it
	Err     error
	hostile bool
}

func (e *EntryError) Error() string { return fmt.Sprintf("layer entry %q: %v", e.Entry, e.Err) }
func (e *EntryError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrHostile) true for refused entries.
func (e *EntryError) Is(target error) bool { return target == ErrHostile && e.hostile }

func hostileEntry(name, format string, args ...any) error {
	return &EntryError{Entry: name, Err: fmt.Errorf(format, args...), hostile: true}
}

// Names the OCI image spec reserves for whiteouts.
const (
	whiteoutPrefix = ".wh."
	whiteoutMeta   = ".wh..wh."
	whiteoutOpaque = ".wh..wh..opq"
	opaqueXattr    = "trusted.overlay.opaque"
)

// ExtractLayer extracts one image layer's tar stream r into dir, an
// existing empty directory, as an overlayfs lower layer: a whiteout
// ".wh.<name>" becomes a 0/0 character device named <name>, ".wh..wh..opq"
// sets trusted.overlay.opaque=y on its directory. Owners and every mode bit
// (setuid, setgid, sticky included) are kept as the image has them: the
// container mounts the layers nosuid, so a setuid file is harmless there,
// and a /tmp that lost its sticky bit would not be.
//
// Every write goes through an os.Root on dir, so nothing outside dir is
// ever touched whatever the stream holds, and every entry is checked
// first: a name that leaves dir, a write through a symbolic link the layer
// made, a whiteout of ".", ".." or a path, a hard link to anything but a
// regular file of the layer are refused with an error that wraps
// ErrHostile and names the entry. Devices and FIFOs are left out (a
// builder needs none) and counted in Skipped. Symbolic links are stored
// verbatim: they are resolved later, inside the container's root.
//
// r is read to its end, padding after the archive included, so a caller
// hashing the stream (to check a diffID) sees all of it. On error dir is
// left half-written: the caller removes it.
func ExtractLayer(ctx context.Context, r io.Reader, dir string, lim Limits) (ExtractStats, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return ExtractStats{}, fmt.Errorf("open layer directory: %w", err)
	}
	defer root.Close()
	return ExtractLayerRoot(ctx, r, root, lim)
}

// ExtractLayerRoot is ExtractLayer into the directory root is open on.
func ExtractLayerRoot(ctx context.Context, r io.Reader, root *os.Root, lim Limits) (ExtractStats, error) {
	lim = lim.withDefaults()
	if err := layerDirEmpty(root); err != nil {
		return ExtractStats{}, err
	}
	x := &extraction{ctx: ctx, root: root, lim: lim, dirs: map[string]bool{".": true}, dirTimes: map[string]time.Time{}}
	defer x.closeParent()
	x.in = &boundedReader{ctx: ctx, r: r, max: lim.MaxBytes, read: &x.stats.Read}
	err := x.run()
	if err == nil {
		err = x.setDirTimes()
	}
	return x.stats, err
}

// layerDirEmpty refuses a directory that holds anything: a layer is
// extracted into a fresh directory, never merged into an old one.
func layerDirEmpty(root *os.Root) error {
	d, err := root.Open(".")
	if err != nil {
		return fmt.Errorf("open %s: %w", root.Name(), err)
	}
	defer d.Close()
	names, err := d.Readdirnames(1)
	if len(names) > 0 {
		return fmt.Errorf("%s must be an empty directory: it holds %s", root.Name(), names[0])
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("list %s: %w", root.Name(), err)
	}
	return nil
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultLimits.MaxBytes
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = DefaultLimits.MaxEntries
	}
	return l
}

// extraction is one ExtractLayer call.
type extraction struct {
	ctx   context.Context
	root  *os.Root
	lim   Limits
	in    *boundedReader
	stats ExtractStats
	// dirs holds the paths known to be real directories of this layer
	// (made or checked here): nothing else writes into dir meanwhile, so
	// each parent is checked once, not once per entry below it.
	dirs map[string]bool
	// parent is the last parent directory opened, reused while the
	// entries stay in it (tar streams list a directory's entries together).
	parentName string
	parent     *os.Root
	// dirTimes are set last: writing into a directory changes its mtime.
	dirTimes map[string]time.Time
}

func (x *extraction) run() error {
	tr := tar.NewReader(x.in)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read layer tar after %d entries: %w", x.stats.Entries, err)
		}
		x.stats.Entries++
		if x.stats.Entries > x.lim.MaxEntries {
			return fmt.Errorf("%w: more than %d entries (Limits.MaxEntries)", ErrLimit, x.lim.MaxEntries)
		}
		if err := x.entry(h, tr); err != nil {
			return err
		}
	}
	// Drain the padding after the archive's end, for the caller's hash.
	if _, err := io.Copy(io.Discard, x.in); err != nil {
		return fmt.Errorf("read the end of the layer: %w", err)
	}
	return nil
}

// entry validates and writes one tar entry, naming it in any error.
func (x *extraction) entry(h *tar.Header, body io.Reader) error {
	err := x.write(h, body)
	var ee *EntryError
	switch {
	case err == nil || errors.As(err, &ee) || errors.Is(err, ErrLimit):
		return err
	case x.ctx.Err() != nil && errors.Is(err, x.ctx.Err()):
		return err
	case leavesRoot(err):
		// os.Root refused a path out of the layer: a check above missed
		// a way out, and the root caught it.
		return hostileEntry(h.Name, "%w", err)
	}
	return &EntryError{Entry: h.Name, Err: err}
}

func (x *extraction) write(h *tar.Header, body io.Reader) error {
	name, err := entryName(h.Name)
	if err != nil || name == "." { // "." is the layer's root: the caller's
		return err
	}
	dir, base := splitEntry(name)
	switch {
	case strings.HasPrefix(base, whiteoutPrefix):
		return x.whiteout(h.Name, dir, base)
	case h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock || h.Typeflag == tar.TypeFifo:
		x.stats.Skipped++
		return nil
	case h.Typeflag == tar.TypeLink:
		return x.hardlink(h, name, dir, base)
	}
	p, err := x.parentDir(h.Name, dir)
	if err != nil {
		return err
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return x.mkdir(p, h, name, base)
	case tar.TypeSymlink:
		return x.symlink(p, h, name, base)
	case tar.TypeReg, tar.TypeGNUSparse:
		return x.file(p, h, name, base, body)
	}
	return hostileEntry(h.Name, "unsupported tar entry type %q", h.Typeflag)
}

// entryName cleans a tar name into a path relative to the layer's root. A
// leading "/" is dropped (absolute names are taken as inside the layer,
// as every image tool does); a name that still leads out, through "..",
// is refused.
func entryName(raw string) (string, error) {
	if raw == "" || strings.ContainsRune(raw, 0) {
		return "", hostileEntry(raw, "the name is empty or holds a NUL byte")
	}
	name := path.Clean(strings.TrimLeft(raw, "/"))
	if name == ".." || strings.HasPrefix(name, "../") {
		return "", hostileEntry(raw, "the name leads outside the layer")
	}
	return name, nil
}

// splitEntry splits a clean relative name into its directory ("." at the
// top) and its last component.
func splitEntry(name string) (dir, base string) {
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return ".", name
	}
	return name[:i], name[i+1:]
}

// parentDir returns dir open as a Root, making the directories that the
// stream did not list (as image tools do) and refusing a path through a
// symbolic link the layer made, or through a file.
func (x *extraction) parentDir(raw, dir string) (*os.Root, error) {
	if x.parent != nil && x.parentName == dir && x.dirs[dir] {
		return x.parent, nil
	}
	if err := x.walkDirs(raw, dir, true); err != nil {
		return nil, err
	}
	x.closeParent()
	p, err := x.root.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	x.parent, x.parentName = p, dir
	return p, nil
}

// leavesRoot reports os.Root's refusal of a path that leaves it (its error
// value is not exported).
func leavesRoot(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}

func (x *extraction) closeParent() {
	if x.parent != nil {
		x.parent.Close()
		x.parent, x.parentName = nil, ""
	}
}

// walkDirs checks that each directory of the path dir is a real directory
// of the layer, making missing ones when create is set: a link (to
// anywhere) or a file on the way is refused, not followed.
func (x *extraction) walkDirs(raw, dir string, create bool) error {
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		sub := dir[:i]
		if x.dirs[sub] {
			continue
		}
		fi, err := x.root.Lstat(sub)
		switch {
		case errors.Is(err, fs.ErrNotExist) && create:
			if err := x.root.Mkdir(sub, 0o755); err != nil {
				return err
			}
		case err != nil:
			return err
		case fi.Mode()&fs.ModeSymlink != 0:
			return hostileEntry(raw, "%s is a symbolic link in this layer: cipack does not write through links", sub)
		case !fi.IsDir():
			return hostileEntry(raw, "%s is not a directory in this layer", sub)
		}
		x.dirs[sub] = true
	}
	return nil
}

// setDirTimes gives directories their mtimes, deepest first, once nothing
// more is written into them.
func (x *extraction) setDirTimes() error {
	names := make([]string, 0, len(x.dirTimes))
	for n := range x.dirTimes {
		names = append(names, n)
	}
	// A directory's name is shorter than its descendants': longest first.
	slices.SortFunc(names, func(a, b string) int { return len(b) - len(a) })
	for _, n := range names {
		if fi, err := x.root.Lstat(n); err != nil || !fi.IsDir() {
			continue
		}
		if err := x.root.Chtimes(n, x.dirTimes[n], x.dirTimes[n]); err != nil {
			return fmt.Errorf("set the mtime of %s: %w", n, err)
		}
	}
	return nil
}

// tarMode converts a tar header's mode (Unix bits) to an fs.FileMode,
// keeping setuid, setgid and sticky: fs.FileMode has its own bits for
// them, so a plain conversion would drop them.
func tarMode(m int64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}

// boundedReader counts the stream, fails past max, and stops when ctx is
// done: a layer is read in many small reads, each a chance to stop.
type boundedReader struct {
	ctx  context.Context
	r    io.Reader
	max  int64
	read *int64
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, err
	}
	left := b.max + 1 - *b.read // one byte past max tells it is past
	if left <= 0 {
		return 0, b.tooBig()
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := b.r.Read(p)
	*b.read += int64(n)
	if *b.read > b.max {
		return n, b.tooBig()
	}
	return n, err
}

func (b *boundedReader) tooBig() error {
	return fmt.Errorf("%w: more than %d bytes uncompressed (Limits.MaxBytes)", ErrLimit, b.max)
}
