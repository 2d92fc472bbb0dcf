package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// makeTargets clears the way to every mount destination in the
// container's root before the runtime runs: a symlink, or a file where a
// directory belongs, that the builder's layers put on the way is removed. The runtime resolves mount
// targets inside the root, but runc 1.1 then writes /dev/ptmx and the
// /dev/fd links through rootfs/dev without doing so: a builder whose
// /dev is a link to a host directory would have runc write there. The
// changes land in the overlay's tmpfs upper layer, never in the store.
// Nothing runs in the root yet, so nothing can swap a path under us.
func makeTargets(root string, mounts []specs.Mount) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, m := range mounts {
		file := false
		if m.Type == "bind" {
			fi, err := os.Stat(m.Source)
			if err != nil {
				return fmt.Errorf("bind source %s: %w", m.Source, err)
			}
			file = !fi.IsDir()
		}
		if err := makeTarget(r, strings.TrimPrefix(path.Clean(m.Destination), "/"), file); err != nil {
			return fmt.Errorf("mount target %s: %w", m.Destination, err)
		}
	}
	return nil
}

// makeTarget walks rel component by component, never through a link,
// and removes the first entry of the wrong kind (a link, a file where a
// directory belongs): the runtime then makes what is missing, inside the
// root, with the modes it gives new mount points (runc keeps an existing
// directory's mode on a tmpfs, so cipack makes none itself).
func makeTarget(r *os.Root, rel string, file bool) error {
	if rel == "" || rel == "." {
		return nil
	}
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := strings.Join(parts[:i+1], "/")
		last := i == len(parts)-1
		fi, err := r.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return err
		case last && file && fi.Mode().IsRegular(), !(last && file) && fi.IsDir():
			continue
		}
		// Replaced in the overlay's upper layer (a whiteout), not the store.
		return r.RemoveAll(p)
	}
	return nil
}
