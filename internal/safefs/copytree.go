package safefs

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// CopyOptions tunes CopyTree.
type CopyOptions struct {
	// Filter decides what is copied: rel is the path inside src with '/'
	// separators; false for a directory leaves out its whole subtree. Nil
	// copies everything. (project.toml's include/exclude.)
	Filter func(rel string, isDir bool) bool
	// SkipHardLinks leaves out regular files with more than one link, and
	// lists them: as root, another link may be outside the tree
	// (/etc/shadow), and copying it would hand its content to the build.
	SkipHardLinks bool
	// PruneEmptyDirs leaves out directories in which nothing was copied,
	// so a filter that keeps no file under a directory does not reveal the
	// directory's name either.
	PruneEmptyDirs bool
	// KeepDir, with PruneEmptyDirs, names the directories kept even when
	// nothing in them was copied: those the filter itself keeps, as pack
	// keeps an empty directory its include/exclude patterns accept.
	KeepDir func(rel string) bool
	// Chown lchowns every created entry to UID:GID, so the build user
	// owns the copy.
	Chown    bool
	UID, GID int
	// MaxBytes bounds the file bytes copied in total (0: unbounded): a
	// sparse file costs no disk in the source and all of it in the copy.
	MaxBytes int64
}

// CopyStats says what CopyTree copied and what it left out. Paths are
// relative to src, with '/' separators.
type CopyStats struct {
	Files, Dirs, Links int // created in dst (Dirs: below dst itself)
	Bytes              int64
	Skipped            []string // FIFOs, sockets, devices
	SkippedLinks       []string // files with hard links (SkipHardLinks)
	Mounts             []string // other filesystems mounted inside src
}

// CopyTree copies the tree at src, which another party controls (the
// user's app, with whatever links, FIFOs, devices or hard links it holds),
// into dst, which must not exist or be an empty directory. Directories and
// regular files are copied; symbolic links are re-created with the same
// target text, never followed; FIFOs, sockets and devices are skipped and
// listed; other mounted filesystems are not entered. Modes are kept except
// setuid and setgid (a copy made as root must not hand out privileges),
// and so are modification times (not for links).
//
// src is read through an os.Root, so a directory swapped for a link while
// the walk runs cannot lead it out of src, and each file opened is checked
// to be the file that was examined. dst is written through an os.Root too.
func CopyTree(src, dst string, opt CopyOptions) (CopyStats, error) {
	c := &treeCopy{srcName: src, dstName: dst, opt: opt, left: opt.MaxBytes}
	var err error
	if c.src, err = os.OpenRoot(src); err != nil {
		return c.stats, fmt.Errorf("open %s: %w", src, err)
	}
	defer c.src.Close()
	top, err := c.src.Stat(".")
	if err != nil {
		return c.stats, fmt.Errorf("stat %s: %w", src, err)
	}
	c.dev = devOf(top)
	if c.dst, err = openEmptyDir(dst); err != nil {
		return c.stats, err
	}
	defer c.dst.Close()
	_, err = c.dir(".", top)
	return c.stats, err
}

type treeCopy struct {
	src, dst         *os.Root
	srcName, dstName string
	dev              uint64
	opt              CopyOptions
	left             int64 // bytes MaxBytes still allows
	stats            CopyStats
}

// dir copies the entries of the directory rel (already made in dst), then
// gives the copy its mode and times: last, since writing inside changes
// the time and a read-only mode would stop the writes. It reports whether
// the directory was kept.
func (c *treeCopy) dir(rel string, fi fs.FileInfo) (bool, error) {
	names, err := listDir(c.src, rel, fi, c.srcName)
	if err != nil {
		return false, err
	}
	kept := 0
	for _, name := range names {
		ok, err := c.entry(path.Join(rel, name))
		if err != nil {
			return false, err
		}
		if ok {
			kept++
		}
	}
	if rel != "." && kept == 0 && c.opt.PruneEmptyDirs && (c.opt.KeepDir == nil || !c.opt.KeepDir(rel)) {
		return false, c.dst.Remove(rel)
	}
	return true, c.finish(rel, fi)
}

// entry copies one entry of src and reports whether it was created.
func (c *treeCopy) entry(rel string) (bool, error) {
	fi, err := c.src.Lstat(rel)
	if err != nil {
		return false, fmt.Errorf("copy %s: %w", c.srcPath(rel), err)
	}
	mode := fi.Mode()
	if c.opt.Filter != nil && !c.opt.Filter(rel, mode.IsDir()) {
		return false, nil
	}
	if devOf(fi) != c.dev {
		c.stats.Mounts = append(c.stats.Mounts, rel)
		return false, nil
	}
	switch {
	case mode.IsDir():
		return c.subdir(rel, fi)
	case mode&fs.ModeSymlink != 0:
		return true, c.symlink(rel)
	case mode.IsRegular():
		return c.file(rel, fi)
	}
	c.stats.Skipped = append(c.stats.Skipped, rel)
	return false, nil
}

func (c *treeCopy) subdir(rel string, fi fs.FileInfo) (bool, error) {
	// Owner-only until finished: nobody else has business in it meanwhile.
	if err := c.dst.Mkdir(rel, 0o700); err != nil {
		return false, fmt.Errorf("copy %s: %w", c.srcPath(rel), err)
	}
	kept, err := c.dir(rel, fi)
	if kept {
		c.stats.Dirs++
	}
	return kept, err
}

func (c *treeCopy) symlink(rel string) error {
	target, err := c.src.Readlink(rel)
	if err != nil {
		return fmt.Errorf("copy %s: %w", c.srcPath(rel), err)
	}
	if err := c.dst.Symlink(target, rel); err != nil {
		return fmt.Errorf("copy %s: %w", c.srcPath(rel), err)
	}
	if c.opt.Chown {
		if err := c.dst.Lchown(rel, c.opt.UID, c.opt.GID); err != nil {
			return fmt.Errorf("chown the copy of %s: %w", c.srcPath(rel), err)
		}
	}
	c.stats.Links++
	return nil
}

func (c *treeCopy) file(rel string, fi fs.FileInfo) (bool, error) {
	if c.opt.SkipHardLinks && nlink(fi) > 1 {
		c.stats.SkippedLinks = append(c.stats.SkippedLinks, rel)
		return false, nil
	}
	in, st, err := openChecked(c.src, rel, fi, c.srcPath(rel))
	if err != nil {
		return false, err
	}
	defer in.Close()
	if c.opt.SkipHardLinks && nlink(st) > 1 {
		// Linked since it was examined.
		c.stats.SkippedLinks = append(c.stats.SkippedLinks, rel)
		return false, nil
	}
	out, err := c.dst.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("copy %s: %w", c.srcPath(rel), err)
	}
	n, err := c.copyData(out, in, rel)
	c.stats.Bytes += n
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write the copy of %s: %w", c.srcPath(rel), cerr)
	}
	if err != nil {
		return false, err
	}
	c.stats.Files++
	return true, c.finish(rel, fi)
}

// copyData copies in to out within what MaxBytes still allows.
func (c *treeCopy) copyData(out io.Writer, in io.Reader, rel string) (int64, error) {
	if c.opt.MaxBytes <= 0 {
		n, err := io.Copy(out, in)
		if err != nil {
			err = fmt.Errorf("copy %s: %w", c.srcPath(rel), err)
		}
		return n, err
	}
	n, err := io.Copy(out, io.LimitReader(in, c.left+1))
	if err != nil {
		return n, fmt.Errorf("copy %s: %w", c.srcPath(rel), err)
	}
	if n > c.left {
		return n, fmt.Errorf("copy %s: the files copied from %s exceed %d bytes in total", c.srcPath(rel), c.srcName, c.opt.MaxBytes)
	}
	c.left -= n
	return n, nil
}

// finish gives a created file or directory its owner, mode and times, in
// that order: chown may clear mode bits, and chmod leaves times alone.
func (c *treeCopy) finish(rel string, fi fs.FileInfo) error {
	if c.opt.Chown {
		if err := c.dst.Lchown(rel, c.opt.UID, c.opt.GID); err != nil {
			return fmt.Errorf("chown the copy of %s: %w", c.srcPath(rel), err)
		}
	}
	if err := c.dst.Chmod(rel, copyMode(fi.Mode())); err != nil {
		return fmt.Errorf("chmod the copy of %s: %w", c.srcPath(rel), err)
	}
	if err := c.dst.Chtimes(rel, atime(fi), fi.ModTime()); err != nil {
		return fmt.Errorf("set times on the copy of %s: %w", c.srcPath(rel), err)
	}
	return nil
}

func (c *treeCopy) srcPath(rel string) string { return filepath.Join(c.srcName, rel) }

// copyMode is the mode a copy gets: permissions and sticky, never setuid
// or setgid.
func copyMode(m fs.FileMode) fs.FileMode { return m.Perm() | m&fs.ModeSticky }

// openEmptyDir makes dst (or takes it when it is an empty directory, not a
// link) and opens it as the root the copy is written through.
func openEmptyDir(dst string) (*os.Root, error) {
	if err := os.MkdirAll(dst, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dst, err)
	}
	fi, err := os.Lstat(dst)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is %s, not a directory to copy into", dst, kind(fi.Mode()))
	}
	r, err := os.OpenRoot(dst)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dst, err)
	}
	if err := sameDir(r, fi, dst); err != nil {
		r.Close()
		return nil, err
	}
	if names, err := readNames(r, "."); err != nil || len(names) > 0 {
		r.Close()
		if err == nil {
			err = fmt.Errorf("%s is not empty: cipack copies only into a new directory", dst)
		}
		return nil, err
	}
	return r, nil
}
