package creator

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/platform/files"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/safefs"
)

// Builder is what cipack needs to know of the builder it runs in: where the
// lifecycle and buildpacks live, and which run image it names by default.
type Builder struct {
	CNBDir string
	// APIs the lifecycle declares in lifecycle.toml; empty when the builder
	// has none (builders made by `pack builder create`).
	DeclaredAPIs []string
	// BuildpackAPIs are the Buildpack APIs lifecycle.toml declares (empty
	// when it has none).
	BuildpackAPIs []string
	Version       string
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

// LoadBuilder inspects cnbDir on this filesystem (in-builder mode). It
// fails with exit.Builder when the lifecycle is missing, so that the user
// learns it before any push.
func LoadBuilder(cnbDir string) (*Builder, error) {
	return LoadBuilderFrom(cnbDir, LocalFiles{})
}

// Files is how LoadBuilder reads the builder's files: the local
// filesystem in-builder, an unpacked builder image's layers in pull mode.
type Files interface {
	Stat(path string) (fs.FileInfo, error)
	ReadFile(path string) ([]byte, error)
}

// LocalFiles is Files on this filesystem (in-builder mode). The builder
// is still someone else's image: its descriptors are read bounded and
// only as regular files (a FIFO or /dev/zero there must not hang or
// exhaust cipack).
type LocalFiles struct{}

// maxDescriptor bounds a builder descriptor (order.toml, run.toml, …).
const maxDescriptor = 1 << 20

func (LocalFiles) Stat(p string) (fs.FileInfo, error) { return os.Stat(p) }
func (LocalFiles) ReadFile(p string) ([]byte, error)  { return safefs.ReadUserFile(p, maxDescriptor) }

// LoadBuilderFrom inspects the builder whose CNB directory is cnbDir, as
// seen through files.
func LoadBuilderFrom(cnbDir string, fsys Files) (*Builder, error) {
	b := &Builder{CNBDir: cnbDir}
	if err := executable(fsys, b.Creator()); err != nil {
		return nil, exit.New(exit.Builder, "lifecycle", fmt.Errorf("no creator at %s: %w", b.Creator(), err),
			"run cipack in a step whose image is a CNB builder (it ships /cnb/lifecycle), pass --builder to pull one, or point --cnb-dir at the builder's /cnb")
	}
	var desc struct {
		APIs struct {
			Platform struct {
				Supported []string `toml:"supported"`
			} `toml:"platform"`
			Buildpack struct {
				Supported []string `toml:"supported"`
			} `toml:"buildpack"`
		} `toml:"apis"`
		Lifecycle struct {
			Version string `toml:"version"`
		} `toml:"lifecycle"`
	}
	if raw, err := fsys.ReadFile(b.Path("lifecycle", "lifecycle.toml")); err == nil {
		if _, err := toml.Decode(string(raw), &desc); err != nil {
			return nil, exit.New(exit.Builder, b.Path("lifecycle", "lifecycle.toml"), err, "the builder's lifecycle descriptor is malformed")
		}
		b.DeclaredAPIs = desc.APIs.Platform.Supported
		b.BuildpackAPIs = desc.APIs.Buildpack.Supported
		b.Version = desc.Lifecycle.Version
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, exit.New(exit.Builder, b.Path("lifecycle", "lifecycle.toml"), err, "the builder's lifecycle descriptor cannot be read")
	}
	// The lifecycle's own types, decoded from bytes: its files.Handler
	// reads only paths on the local filesystem.
	if raw, err := fsys.ReadFile(b.Path("order.toml")); err == nil {
		var order struct {
			Extensions []toml.Primitive `toml:"order-extensions"`
		}
		if _, err := toml.Decode(string(raw), &order); err != nil {
			return nil, exit.New(exit.Builder, b.Path("order.toml"), err, "the builder's order.toml is malformed")
		}
		b.Extensions = len(order.Extensions) > 0
	}
	if raw, err := fsys.ReadFile(b.Path("run.toml")); err == nil {
		var run files.Run
		if _, err := toml.Decode(string(raw), &run); err == nil && len(run.Images) > 0 {
			b.HasRunToml = true
			b.RunImage = run.Images[0]
		}
	}
	if raw, err := fsys.ReadFile(b.Path("stack.toml")); err == nil {
		var st files.Stack
		if _, err := toml.Decode(string(raw), &st); err == nil && st.RunImage.Image != "" {
			b.HasStackToml = true
			if !b.HasRunToml {
				b.RunImage = st.RunImage
			}
		}
	}
	return b, nil
}

func executable(fsys Files, path string) error {
	fi, err := fsys.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s is not an executable file", path)
	}
	return nil
}
