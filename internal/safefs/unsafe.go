package safefs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// Unsafe is an entry a trusted reader or writer must not meet in a tree
// someone else filled: a symbolic link (a write through it lands wherever
// it points) or a special file (a FIFO blocks a read forever).
type Unsafe struct {
	// Rel is the entry's path inside the root.
	Rel string
	// Kind says what it is ("a symbolic link", …).
	Kind string
}

// FindUnsafe walks root, following no link, at most depth levels down
// (1: root's own entries; 0: no limit), and lists the entries that are
// neither regular files nor directories, in path order. It examines at
// most max entries: a tree that holds more is an error, not a long walk.
// A root that does not exist has nothing unsafe in it.
func FindUnsafe(root string, depth, max int) ([]Unsafe, error) {
	r, err := os.OpenRoot(root)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", root, err)
	}
	defer r.Close()
	w := &unsafeWalk{r: r, root: root, depth: depth, left: max}
	if err := w.dir(".", 1); err != nil {
		return nil, err
	}
	return w.found, nil
}

type unsafeWalk struct {
	r     *os.Root
	root  string
	depth int
	left  int
	found []Unsafe
}

// dir examines the entries of rel, a directory level levels below root
// that was Lstat'ed as one (or is root itself): os.Root resolves rel
// inside root, and no component of it is a link.
func (w *unsafeWalk) dir(rel string, level int) error {
	names, err := readNames(w.r, rel)
	if err != nil {
		return fmt.Errorf("list %s: %w", filepath.Join(w.root, rel), err)
	}
	slices.Sort(names)
	for _, n := range names {
		if w.left--; w.left < 0 {
			return fmt.Errorf("%s holds too many entries to check", w.root)
		}
		child := filepath.Join(rel, n)
		fi, err := w.r.Lstat(child)
		if err != nil {
			return fmt.Errorf("stat %s: %w", filepath.Join(w.root, child), err)
		}
		switch m := fi.Mode(); {
		case m.IsDir():
			if w.depth == 0 || level < w.depth {
				if err := w.dir(child, level+1); err != nil {
					return err
				}
			}
		case !m.IsRegular():
			w.found = append(w.found, Unsafe{Rel: child, Kind: kind(m)})
		}
	}
	return nil
}
