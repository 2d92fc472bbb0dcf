// Helpers shared by CopyTree and CopyOut: walking a tree through an
// os.Root with each open checked against what was examined.

package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// openChecked opens the regular file rel in r for reading and checks it is
// the file fi describes: between the Lstat and the open it could have been
// swapped for a link or a FIFO (O_NONBLOCK: the open itself never hangs).
func openChecked(r *os.Root, rel string, fi fs.FileInfo, shown string) (*os.File, fs.FileInfo, error) {
	f, err := r.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", shown, err)
	}
	got, err := f.Stat()
	if err == nil && (!got.Mode().IsRegular() || !os.SameFile(fi, got)) {
		err = fmt.Errorf("%s changed while cipack read it (replaced by a link or another file?)", shown)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, got, nil
}

// listDir lists the directory rel in r, sorted, checking that what was
// opened is the directory fi describes.
func listDir(r *os.Root, rel string, fi fs.FileInfo, rootName string) ([]string, error) {
	shown := filepath.Join(rootName, rel)
	f, err := r.Open(rel)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", shown, err)
	}
	defer f.Close()
	got, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", shown, err)
	}
	if !os.SameFile(fi, got) {
		return nil, fmt.Errorf("%s changed while cipack read it (replaced by a link?)", shown)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", shown, err)
	}
	slices.Sort(names)
	return names, nil
}

func readNames(r *os.Root, rel string) ([]string, error) {
	f, err := r.Open(rel)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return names, err
}

func devOf(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Dev)
	}
	return 0
}

func nlink(fi fs.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return uint64(st.Nlink)
	}
	return 1
}

func atime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Atim.Unix())
	}
	return fi.ModTime()
}
