package safefs

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// CreateFresh creates the file at path for writing, with exactly mode,
// where someone else could have planted something: whatever is at path (a
// symbolic link, a FIFO, a file) is removed, never followed, and the file
// is created with O_CREAT|O_EXCL, so a link re-planted in between fails the
// create instead of redirecting it. The directories leading to path must
// be real directories, not symbolic links, and are held open while the
// file is made, so a directory swapped for a link cannot redirect it. A
// directory at path is refused. The caller writes and closes the file.
func CreateFresh(path string, mode os.FileMode) (*os.File, error) {
	dir, base, err := splitTarget(path)
	if err != nil {
		return nil, err
	}
	r, err := openDir(dir, false)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if err := clearEntry(r, base, path); err != nil {
		return nil, err
	}
	f, err := r.OpenFile(base, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	// The umask narrowed the mode given to open; fchmod sets it exactly.
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return f, nil
}

// WriteFileAtomic writes data to path with exactly mode, so that a reader
// sees the old file or the new one, never half of it, and a link planted
// at path is replaced, not written through: the data goes to a temporary
// file created fresh (O_EXCL, a random name) in the same directory, which
// is renamed over path (rename replaces the entry, it never follows it).
// The directories leading to path must be real directories, as for
// CreateFresh.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return writeAtomic(path, mode, false, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// CopyFileAtomic copies src to dst as WriteFileAtomic writes, creating
// missing directories above dst (0755). src is trusted (copy-self copies
// cipack's own executable); dst is where another party may have left a
// link, so it gets WriteFileAtomic's care. The copy is streamed: a binary
// need not fit in memory.
func CopyFileAtomic(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeAtomic(dst, mode, true, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

func writeAtomic(path string, mode os.FileMode, mkdir bool, fill func(io.Writer) error) error {
	dir, base, err := splitTarget(path)
	if err != nil {
		return err
	}
	r, err := openDir(dir, mkdir)
	if err != nil {
		return err
	}
	defer r.Close()
	tmp := "." + base + ".tmp-" + rand.Text()[:16]
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create a temporary file next to %s: %w", path, err)
	}
	done := false
	defer func() {
		if !done {
			f.Close()
			_ = r.Remove(tmp)
		}
	}()
	if err := fill(f); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := r.Rename(tmp, base); err != nil {
		_ = r.Remove(tmp)
		done = true
		return fmt.Errorf("replace %s: %w", path, err)
	}
	done = true
	return nil
}

// splitTarget splits path into its directory and a final name that can be
// created.
func splitTarget(path string) (dir, base string, err error) {
	clean := filepath.Clean(path)
	dir, base = filepath.Split(clean)
	if base == "" || base == "." || base == ".." {
		return "", "", fmt.Errorf("%s does not name a file", path)
	}
	if dir == "" {
		dir = "."
	}
	return dir, base, nil
}

// clearEntry removes whatever is at name in r, without following it, so
// that the create after it makes a fresh file. A directory is refused: it
// is not something cipack would have written there.
func clearEntry(r *os.Root, name, shown string) error {
	fi, err := r.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", shown, err)
	}
	if fi.IsDir() {
		return fmt.Errorf("%s is a directory, not a file cipack can replace", shown)
	}
	if err := r.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove what is at %s: %w", shown, err)
	}
	return nil
}

// openDir opens dir as an os.Root one component at a time, refusing any
// component that is a symbolic link (with mkdir, creating missing ones).
// Each step holds the directory above open, so a component swapped for a
// link after its check is caught by comparing what was opened with what
// was checked. Leading ".." components of a relative dir are the real
// parents of the working directory, not links, and are taken as given.
func openDir(dir string, mkdir bool) (*os.Root, error) {
	dir = filepath.Clean(dir)
	start, rest := ".", dir
	if filepath.IsAbs(dir) {
		start, rest = "/", strings.TrimPrefix(dir, "/")
	}
	parts := strings.Split(rest, "/")
	for len(parts) > 0 && parts[0] == ".." {
		start, parts = filepath.Join(start, ".."), parts[1:]
	}
	r, err := os.OpenRoot(start)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", start, err)
	}
	shown := start
	for _, p := range parts {
		if p == "." || p == "" {
			continue
		}
		shown = filepath.Join(shown, p)
		next, err := stepDir(r, p, shown, mkdir)
		r.Close()
		if err != nil {
			return nil, err
		}
		r = next
	}
	return r, nil
}

// stepDir opens the directory name inside r, refusing a symbolic link.
func stepDir(r *os.Root, name, shown string, mkdir bool) (*os.Root, error) {
	fi, err := r.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) && mkdir {
		if err := r.Mkdir(name, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("create directory %s: %w", shown, err)
		}
		fi, err = r.Lstat(name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", shown, err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("%s is %s, not a directory: cipack writes only through real directories here", shown, kind(fi.Mode()))
	}
	next, err := r.OpenRoot(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", shown, err)
	}
	if err := sameDir(next, fi, shown); err != nil {
		next.Close()
		return nil, err
	}
	return next, nil
}

// sameDir checks that the directory r holds open is the one fi describes:
// a check and an open are two steps, and a link could be put in between.
func sameDir(r *os.Root, fi fs.FileInfo, shown string) error {
	got, err := r.Stat(".")
	if err != nil {
		return fmt.Errorf("stat %s: %w", shown, err)
	}
	if !os.SameFile(fi, got) {
		return fmt.Errorf("%s changed while cipack opened it (replaced by a link?)", shown)
	}
	return nil
}
