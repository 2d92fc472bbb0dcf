// Package safefs is the one place cipack reads, copies or writes files that
// an untrusted party controls: a builder image's files, what build code
// left in the layers dir, the user's app. cipack often runs as root while
// those parties do not, so every operation here assumes a hostile layout: a
// symbolic link planted to reach a secret or to redirect a write, a FIFO
// that would block a read forever, a device (/dev/zero) or a sparse file
// that would exhaust memory or disk, a hard link to a file outside the
// tree, a directory swapped for a link between a check and a use.
//
// The tools are Go's os.Root (path resolution that never leaves a
// directory), O_NOFOLLOW and O_EXCL on the final component, O_NONBLOCK on
// opens, identity checks (the file opened is the file checked), and size
// bounds counted while reading, not trusted from a stat.
package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// ReadFile reads name inside the directory root, at most max bytes. It is
// for files inside a tree someone else controls (the app's project.toml,
// a file in a builder's filesystem): name is resolved through os.Root, so
// a symbolic link (or "..") is followed only while it stays inside root,
// never out of it, and an absolute name is taken as inside root. Only a
// regular file is read: a FIFO is refused without blocking, a device or a
// directory is refused, and a file that grows past max while read is
// caught.
func ReadFile(root, name string, max int64) ([]byte, error) {
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", root, err)
	}
	defer r.Close()
	rel := inRoot(name)
	shown := filepath.Join(root, rel)
	// Stat first, so a device or FIFO is refused before it is opened:
	// opening some devices has effects of its own.
	fi, err := r.Stat(rel)
	if err != nil {
		return nil, describe(shown, root, err)
	}
	if err := needRegular(shown, fi); err != nil {
		return nil, err
	}
	f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, describe(shown, root, err)
	}
	defer f.Close()
	return readBounded(f, shown, max)
}

// ReadRegular reads the file at path, at most max bytes, when a party that
// cannot be trusted could have replaced it (report.toml and group.toml in
// the layers dir, which build code can write): the final component must
// not be a symbolic link (O_NOFOLLOW), and only a regular file is read,
// never blocking on a FIFO. The directories above path are the caller's.
func ReadRegular(path string, max int64) ([]byte, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil, symlinkError(path)
	}
	if err := needRegular(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return nil, symlinkError(path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f, path, max)
}

// ReadUserFile reads a file the user named on the command line (a fleet
// file, a --descriptor), at most max bytes. The user's own path may lead
// through links, so they are followed; but a FIFO, a device or a huge file
// given by mistake (or by a script that generates the argument) must give
// an error, not a hang or an exhausted memory.
func ReadUserFile(path string, max int64) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if err := needRegular(path, fi); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readBounded(f, path, max)
}

// readBounded reads the open file f, checking what was opened (not what a
// path named a moment before) and counting the bytes as they come: the
// size from fstat is only a first refusal.
func readBounded(f *os.File, name string, max int64) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", name, err)
	}
	if err := needRegular(name, fi); err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%s is %d bytes, more than the %d allowed", name, fi.Size(), max)
	}
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s grew past %d bytes while read", name, max)
	}
	return b, nil
}

// needRegular refuses anything but a regular file, saying what it is.
func needRegular(name string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() {
		return nil
	}
	return fmt.Errorf("%s is not a regular file: it is %s", name, kind(fi.Mode()))
}

// kind names a file type for an error message.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "a special file (" + m.Type().String() + ")"
}

func symlinkError(path string) error {
	return fmt.Errorf("%s is a symbolic link: cipack does not follow links here, a planted one could lead anywhere", path)
}

// inRoot turns name into a path for os.Root: an absolute name is taken as
// inside the root (cleaned first, so "/../x" stays inside); a relative one
// is kept as given, so ".." that leaves the root is refused by os.Root.
func inRoot(name string) string {
	if !filepath.IsAbs(name) {
		return name
	}
	rel := strings.TrimLeft(filepath.Clean(name), "/")
	if rel == "" {
		return "."
	}
	return rel
}

// describe wraps an error from an os.Root operation on name, saying in
// words when the path tried to leave root (os.Root's own error is terse).
func describe(name, root string, err error) error {
	if escapes(err) {
		return fmt.Errorf("%s leads outside %s (through a symbolic link or ..), which cipack does not follow: %w", name, root, err)
	}
	return fmt.Errorf("%s: %w", name, err)
}

// escapes reports whether err is os.Root's refusal to leave the root; the
// error value is not exported, so its text is matched.
func escapes(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent"
}
