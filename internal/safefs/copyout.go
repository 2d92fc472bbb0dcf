package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// CopyOut copies a tree that build code wrote (the SBOM files under the
// layers dir) to dst, a directory the user named, and returns the number
// of files copied. Only directories and regular files are copied, and
// never through a link on either side: a link planted in src is skipped
// (it is not an SBOM, and following it could copy out a secret), and so is
// a file with more than one hard link (the other may be outside); src or
// dst being a link themselves is refused; a link found inside dst where a
// directory goes is replaced by the directory, and a file is created
// fresh (whatever was at its name removed, O_EXCL), so nothing is written
// through a link. Each file is bounded by maxFile bytes and all of them by
// maxTotal (0: unbounded). A missing src copies nothing, and dst is made.
func CopyOut(src, dst string, maxFile, maxTotal int64) (int, error) {
	_, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		r, err := openOutDir(dst)
		if err == nil {
			r.Close()
		}
		return 0, err
	}
	o := &outCopy{srcName: src, dstName: dst, maxFile: maxFile, maxTotal: maxTotal}
	var top fs.FileInfo
	if o.src, top, err = openRealDir(src); err != nil {
		return 0, err
	}
	defer o.src.Close()
	if o.dst, err = openOutDir(dst); err != nil {
		return 0, err
	}
	defer o.dst.Close()
	err = o.dir(".", top)
	return o.files, err
}

type outCopy struct {
	src, dst          *os.Root
	srcName, dstName  string
	maxFile, maxTotal int64
	total             int64
	files             int
}

func (o *outCopy) dir(rel string, fi fs.FileInfo) error {
	names, err := listDir(o.src, rel, fi, o.srcName)
	if err != nil {
		return err
	}
	for _, name := range names {
		child := path.Join(rel, name)
		cfi, err := o.src.Lstat(child)
		if err != nil {
			return fmt.Errorf("copy %s: %w", filepath.Join(o.srcName, child), err)
		}
		switch {
		case cfi.IsDir():
			if err := o.mkdir(child); err != nil {
				return err
			}
			err = o.dir(child, cfi)
		case cfi.Mode().IsRegular() && nlink(cfi) == 1:
			err = o.file(child, cfi)
		}
		// Anything else (a link, a FIFO, a device, a hard link that may
		// be to a file outside) was planted: not copied.
		if err != nil {
			return err
		}
	}
	return nil
}

// mkdir makes the directory rel in dst, replacing a link found there: the
// files about to be written below it must land in dst, not where the
// link points.
func (o *outCopy) mkdir(rel string) error {
	shown := filepath.Join(o.dstName, rel)
	fi, err := o.dst.Lstat(rel)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		if err := o.dst.Remove(rel); err != nil {
			return fmt.Errorf("remove the link at %s: %w", shown, err)
		}
	case err == nil:
		return fmt.Errorf("%s is %s, not a directory", shown, kind(fi.Mode()))
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: %w", shown, err)
	}
	if err := o.dst.Mkdir(rel, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", shown, err)
	}
	return nil
}

func (o *outCopy) file(rel string, fi fs.FileInfo) error {
	from, to := filepath.Join(o.srcName, rel), filepath.Join(o.dstName, rel)
	if o.maxFile > 0 && fi.Size() > o.maxFile {
		return fmt.Errorf("%s is more than %d bytes", from, o.maxFile)
	}
	in, _, err := openChecked(o.src, rel, fi, from)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := clearEntry(o.dst, rel, to); err != nil {
		return err
	}
	out, err := o.dst.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", to, err)
	}
	err = o.copyData(out, in, from)
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("write %s: %w", to, cerr)
	}
	if err != nil {
		_ = o.dst.Remove(rel)
		return err
	}
	o.files++
	return nil
}

// copyData copies one file within both bounds, counting the bytes as they
// come: a file can grow after it was examined.
func (o *outCopy) copyData(out io.Writer, in io.Reader, from string) error {
	limit := int64(-1)
	if o.maxFile > 0 {
		limit = o.maxFile
	}
	if o.maxTotal > 0 && (limit < 0 || o.maxTotal-o.total < limit) {
		limit = o.maxTotal - o.total
	}
	if limit >= 0 {
		in = io.LimitReader(in, limit+1)
	}
	n, err := io.Copy(out, in)
	if err != nil {
		return fmt.Errorf("copy %s: %w", from, err)
	}
	if o.maxFile > 0 && n > o.maxFile {
		return fmt.Errorf("%s is more than %d bytes", from, o.maxFile)
	}
	if o.total += n; o.maxTotal > 0 && o.total > o.maxTotal {
		return fmt.Errorf("the files under %s exceed %d bytes in total", o.srcName, o.maxTotal)
	}
	return nil
}

// openRealDir opens dir as a root, refusing a link: build code could have
// replaced the directory cipack copies from with a link to anywhere.
func openRealDir(dir string) (*os.Root, fs.FileInfo, error) {
	fi, err := os.Lstat(dir)
	if err != nil {
		return nil, nil, err
	}
	if !fi.IsDir() {
		return nil, nil, fmt.Errorf("%s is %s, not a directory", dir, kind(fi.Mode()))
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("open %s: %w", dir, err)
	}
	if err := sameDir(r, fi, dir); err != nil {
		r.Close()
		return nil, nil, err
	}
	return r, fi, nil
}

// openOutDir makes dst (and its parents) and opens it, refusing dst
// itself being a link: a link there, left by an earlier step, would send
// the copy elsewhere.
func openOutDir(dst string) (*os.Root, error) {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dst, err)
	}
	r, _, err := openRealDir(dst)
	return r, err
}
