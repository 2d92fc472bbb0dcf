package lifecycle

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/platform/files"

	"github.com/cipack/cipack/internal/exit"
)

// Builder is what cipack needs to know of the builder it runs in: where the
// lifecycle and buildpacks live, and which run image it names by default.
type Builder struct {
	CNBDir string
	// APIs the lifecycle declares in lifecycle.toml; empty when the builder
	// has none (builders made by `pack builder create`).
	DeclaredAPIs []string
	Version      string
	// RunImage is the builder's default run image and its mirrors, from
	// run.toml (platform API >= 0.12) or stack.toml.
	RunImage     files.RunImageForExport
	HasRunToml   bool
	HasStackToml bool
	// Extensions is true when order.toml declares image extensions.
	Extensions bool
}

// Path returns the path of a file under the builder's CNB directory.
func (b *Builder) Path(elem ...string) string {
	return filepath.Join(append([]string{b.CNBDir}, elem...)...)
}

// Creator is the path of the creator binary.
func (b *Builder) Creator() string { return b.Path("lifecycle", "creator") }

// LoadBuilder inspects cnbDir. It fails with exit.Builder when the
// lifecycle is missing, so that the user learns it before any push.
func LoadBuilder(cnbDir string) (*Builder, error) {
	b := &Builder{CNBDir: cnbDir}
	if err := executable(b.Creator()); err != nil {
		return nil, exit.New(exit.Builder, "lifecycle", fmt.Errorf("no creator at %s: %w", b.Creator(), err),
			"run cipack in a step whose image is a CNB builder (it ships /cnb/lifecycle), or point --cnb-dir at the builder's /cnb")
	}

	var desc struct {
		APIs struct {
			Platform struct {
				Supported []string `toml:"supported"`
			} `toml:"platform"`
		} `toml:"apis"`
		Lifecycle struct {
			Version string `toml:"version"`
		} `toml:"lifecycle"`
	}
	if _, err := toml.DecodeFile(b.Path("lifecycle", "lifecycle.toml"), &desc); err == nil {
		b.DeclaredAPIs = desc.APIs.Platform.Supported
		b.Version = desc.Lifecycle.Version
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, exit.New(exit.Builder, b.Path("lifecycle", "lifecycle.toml"), err, "the builder's lifecycle descriptor is malformed")
	}

	h := files.NewHandler()
	if _, err := os.Stat(b.Path("order.toml")); err == nil {
		_, ext, err := h.ReadOrder(b.Path("order.toml"))
		if err != nil {
			return nil, exit.New(exit.Builder, b.Path("order.toml"), err, "the builder's order.toml is malformed")
		}
		b.Extensions = len(ext) > 0
	}
	if run, err := h.ReadRun(b.Path("run.toml"), nopLogger{}); err == nil && len(run.Images) > 0 {
		b.HasRunToml = true
		b.RunImage = run.Images[0]
	}
	if st, err := h.ReadStack(b.Path("stack.toml"), nopLogger{}); err == nil && st.RunImage.Image != "" {
		b.HasStackToml = true
		if !b.HasRunToml {
			b.RunImage = st.RunImage
		}
	}
	return b, nil
}

func executable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}
