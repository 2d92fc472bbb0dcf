package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"
)

// What is in a blob's place and must go (a wrong blob, a planted
// directory of any size) is renamed into the blob cache's trash: one
// rename, however big it is, so a check never waits on a removal that
// SIGTERM cannot stop. The trash is emptied at the end of a build,
// entry by entry with ctx, and what a canceled build leaves there the
// next one removes.

// maxTrashDepth bounds the directory depth removed entry by entry (each
// level holds a file descriptor); deeper, the root's RemoveAll takes it.
const maxTrashDepth = 64

// discard moves what is at name in blobs/sha256 to the trash, if it is
// still what was looked at (was): another build sharing the cache may
// have renamed its verified blob into place since, and that one stays.
// With was nil (nothing could be opened: a link), only what is not a
// regular file goes.
func (c *blobCache) discard(name string, was fs.FileInfo) error {
	now, err := c.sha.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if was != nil && !os.SameFile(was, now) || was == nil && now.Mode().IsRegular() {
		return nil
	}
	return c.aside(name)
}

// aside renames name, in blobs/sha256, into the trash under a name no
// other run uses.
func (c *blobCache) aside(name string) error {
	to := fmt.Sprintf("%s/%s.%d.%d", trashDir, name, os.Getpid(), time.Now().UnixNano())
	err := c.root.Rename(shaDir+"/"+name, to)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// emptyTrash removes what is in the trash, stopping with ctx. Only a
// cancellation is an error: what could not be removed is tried again by
// the next build.
func (c *blobCache) emptyTrash(ctx context.Context) error {
	names, err := readNames(c.root, trashDir)
	if err != nil {
		return nil
	}
	for _, n := range names {
		if err := removeTree(ctx, c.root, trashDir+"/"+n, 0); err != nil && ctx.Err() != nil {
			return fmt.Errorf("empty %s/%s: %w", c.top, trashDir, ctx.Err())
		}
	}
	return nil
}

// removeTree removes name in r and everything under it, checking ctx
// before each entry.
func removeTree(ctx context.Context, r *os.Root, name string, depth int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := r.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() && depth >= maxTrashDepth {
		return r.RemoveAll(name)
	}
	if fi.IsDir() {
		if err := emptyDir(ctx, r, name, depth); err != nil {
			return err
		}
	}
	return r.Remove(name)
}

// emptyDir removes what is in the directory name, a batch of names at a
// time, read again after each batch (removing while reading a directory
// may skip entries).
func emptyDir(ctx context.Context, r *os.Root, name string, depth int) error {
	for {
		d, err := r.Open(name)
		if err != nil {
			return err
		}
		names, err := d.Readdirnames(1024)
		d.Close()
		if errors.Is(err, io.EOF) || err == nil && len(names) == 0 {
			return nil
		}
		if err != nil {
			return err
		}
		for _, n := range names {
			if err := removeTree(ctx, r, path.Join(name, n), depth+1); err != nil {
				return err
			}
		}
	}
}

// readNames lists the directory name in r.
func readNames(r *os.Root, name string) ([]string, error) {
	d, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.Readdirnames(-1)
}
