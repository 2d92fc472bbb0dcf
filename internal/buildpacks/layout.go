package buildpacks

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/buildpack"
	"github.com/buildpacks/lifecycle/launch"
)

// ReadOrder decodes an order.toml (the builder's) into the lifecycle's
// type.
func ReadOrder(raw []byte) (buildpack.Order, error) {
	var f struct {
		Order buildpack.Order `toml:"order"`
	}
	_, err := toml.Decode(string(raw), &f)
	return f.Order, err
}

// WriteOrder writes order as an order.toml at path, which must not exist.
func WriteOrder(path string, order buildpack.Order) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("write order.toml: %w", err)
	}
	defer f.Close()
	if err := toml.NewEncoder(f).Encode(struct {
		Order buildpack.Order `toml:"order"`
	}{order}); err != nil {
		return fmt.Errorf("write order.toml: %w", err)
	}
	return nil
}

// VersionsInDir lists the buildpacks under a builder's buildpacks dir
// (ESCAPED_ID/VERSION/buildpack.toml), in the builder's own filesystem.
// The unescaped id is read from nothing but the dir name: '_' stands for
// '/', as the lifecycle writes it.
func VersionsInDir(dir string) (map[string][]string, error) {
	out := map[string][]string{}
	ids, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	for _, e := range ids {
		versions, err := os.ReadDir(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		id := strings.ReplaceAll(e.Name(), "_", "/")
		for _, v := range versions {
			out[id] = append(out[id], v.Name())
		}
		sort.Strings(out[id])
	}
	return out, nil
}

// LinkBuilder makes work a buildpacks dir the lifecycle can be given in
// place of the builder's: next to the fetched buildpacks, a link to each
// of the builder's (builderDir as the lifecycle sees it), except where a
// fetched one of the same id and version replaces it. The builder's
// directory itself is left as it is.
func LinkBuilder(work, builderDir string, versions map[string][]string) error {
	for id, vs := range versions {
		if ValidID(id) != nil {
			continue
		}
		esc := launch.EscapeID(id)
		for _, v := range vs {
			if ValidVersion(v) != nil {
				continue
			}
			dst := filepath.Join(work, esc, v)
			if _, err := os.Lstat(dst); err == nil {
				continue
			}
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(filepath.Join(builderDir, esc, v), dst); err != nil {
				return err
			}
		}
	}
	return nil
}

// Path is where the lifecycle finds m under a buildpacks dir.
func (m Module) Path(buildpacksDir string) string {
	return filepath.Join(buildpacksDir, launch.EscapeID(m.ID), m.Version)
}
