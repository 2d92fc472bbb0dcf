package safefs

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// The writers of ExtractLayer, one per kind of tar entry.

// whiteout writes the overlay form of an OCI whiteout.
func (x *extraction) whiteout(raw, dir, base string) error {
	if base == whiteoutOpaque {
		return x.opaque(raw, dir)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		x.stats.Skipped++ // aufs's own .wh..wh.plnk and the like
		return nil
	}
	target := strings.TrimPrefix(base, whiteoutPrefix)
	if target == "" || target == "." || target == ".." || strings.ContainsRune(target, '/') {
		return hostileEntry(raw, "a whiteout of %q would remove more than one entry of the layer", target)
	}
	p, err := x.parentDir(raw, dir)
	if err != nil {
		return err
	}
	if err := x.clear(p, path.Join(dir, target), target); err != nil {
		return err
	}
	if err := withDirFD(p, func(fd int) error { return unix.Mknodat(fd, target, unix.S_IFCHR, 0) }); err != nil {
		return fmt.Errorf("write whiteout: %w", err)
	}
	x.stats.Whiteouts++
	return nil
}

func (x *extraction) opaque(raw, dir string) error {
	p, err := x.parentDir(raw, dir)
	if err != nil {
		return err
	}
	if err := withDirFD(p, func(fd int) error { return unix.Fsetxattr(fd, opaqueXattr, []byte("y"), 0) }); err != nil {
		return fmt.Errorf("mark %s opaque: %w", dir, err)
	}
	x.stats.Opaque++
	return nil
}

// withDirFD runs f on a file descriptor of the directory p is open on,
// for the *at system calls os.Root does not offer (mknodat, fsetxattr).
func withDirFD(p *os.Root, f func(fd int) error) error {
	d, err := p.Open(".")
	if err != nil {
		return err
	}
	defer d.Close()
	sc, err := d.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := sc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

func (x *extraction) mkdir(p *os.Root, h *tar.Header, name, base string) error {
	if !x.dirs[name] {
		if fi, err := p.Lstat(base); err != nil || !fi.IsDir() {
			if err := x.clear(p, name, base); err != nil {
				return err
			}
			if err := p.Mkdir(base, 0o700); err != nil {
				return err
			}
		}
		x.dirs[name] = true
	}
	// chown clears setuid and setgid: chmod comes after it.
	if err := p.Lchown(base, h.Uid, h.Gid); err != nil {
		return err
	}
	if err := p.Chmod(base, tarMode(h.Mode)); err != nil {
		return err
	}
	x.dirTimes[name] = h.ModTime
	x.stats.Dirs++
	return nil
}

func (x *extraction) symlink(p *os.Root, h *tar.Header, name, base string) error {
	if h.Linkname == "" {
		return hostileEntry(h.Name, "a symbolic link with an empty target")
	}
	if err := x.clear(p, name, base); err != nil {
		return err
	}
	if err := p.Symlink(h.Linkname, base); err != nil {
		return err
	}
	x.stats.Symlinks++
	return p.Lchown(base, h.Uid, h.Gid)
}

func (x *extraction) file(p *os.Root, h *tar.Header, name, base string, body io.Reader) error {
	if err := x.clear(p, name, base); err != nil {
		return err
	}
	// Sparse files are written out whole, so the content is bounded as
	// written, not as read: a small stream may describe a huge file.
	left := x.lim.MaxBytes - x.stats.Bytes
	if h.Size > left {
		return fmt.Errorf("%w: the layer's files hold more than %d bytes (Limits.MaxBytes)", ErrLimit, x.lim.MaxBytes)
	}
	// O_EXCL: the name was just cleared, and a create never follows a link.
	f, err := p.OpenFile(base, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, io.LimitReader(body, left+1))
	x.stats.Bytes += n
	if err == nil && n > left {
		err = fmt.Errorf("%w: the layer's files hold more than %d bytes (Limits.MaxBytes)", ErrLimit, x.lim.MaxBytes)
	}
	if err == nil {
		err = f.Chown(h.Uid, h.Gid)
	}
	if err == nil {
		err = f.Chmod(tarMode(h.Mode)) // after chown, which clears setuid
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	x.stats.Files++
	return p.Chtimes(base, h.ModTime, h.ModTime)
}

// hardlink links name to the regular file the entry names, which must be
// in this layer already: a link to a path outside it, to a link or to
// nothing is refused.
func (x *extraction) hardlink(h *tar.Header, name, dir, base string) error {
	target, err := entryName(h.Linkname)
	if err != nil {
		return hostileEntry(h.Name, "the hard link's target %q leads outside the layer", h.Linkname)
	}
	tdir, _ := splitEntry(target)
	if err := x.walkDirs(h.Name, tdir, false); err != nil {
		return hostileEntry(h.Name, "the hard link's target %q is not a file of this layer", h.Linkname)
	}
	fi, err := x.root.Lstat(target)
	if err != nil || !fi.Mode().IsRegular() {
		return hostileEntry(h.Name, "the hard link's target %q is not a regular file of this layer", h.Linkname)
	}
	if target == name {
		return nil
	}
	p, err := x.parentDir(h.Name, dir)
	if err != nil {
		return err
	}
	if err := x.clear(p, name, base); err != nil {
		return err
	}
	if err := x.root.Link(target, name); err != nil {
		return err
	}
	x.stats.Hardlinks++
	return nil
}

// clear removes what an earlier entry left at name (a later entry
// replaces an earlier one), forgetting the directories it held.
func (x *extraction) clear(p *os.Root, name, base string) error {
	if _, err := p.Lstat(base); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	for d := range x.dirs {
		if d == name || strings.HasPrefix(d, name+"/") {
			delete(x.dirs, d)
			delete(x.dirTimes, d)
		}
	}
	return p.RemoveAll(base)
}
