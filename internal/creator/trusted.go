package creator

import (
	"debug/buildinfo"
	"fmt"
	"path/filepath"
	"runtime/debug"

	"github.com/cipack/cipack/internal/exit"
)

// Module is the lifecycle's module path.
const Module = "github.com/buildpacks/lifecycle"

// Trusted is the lifecycle cipack trusts with registry credentials: the
// `lifecycle` (multi-call) and `launcher` binaries built from the module
// version cipack itself is built with.
type Trusted struct {
	Lifecycle, Launcher string
	Version             string
}

// FindTrusted checks that dir holds lifecycle and launcher binaries built
// from pinned, the lifecycle module cipack was built with (its version
// and, when both record one, its checksum), reading the module facts Go
// writes into every binary. It does not run them. A binary built from
// anything else (a builder's own lifecycle copied there, another version)
// is refused: it would be handed the registry credentials.
func FindTrusted(dir string, pinned *debug.Module) (*Trusted, error) {
	if pinned == nil {
		return nil, exit.New(exit.Builder, "--lifecycle-dir", fmt.Errorf("this cipack binary records no lifecycle module"),
			"build cipack with `go build` (make build) so it records the lifecycle it pins, or pass --trust-builder")
	}
	t := &Trusted{Lifecycle: filepath.Join(dir, "lifecycle"), Launcher: filepath.Join(dir, "launcher"), Version: pinned.Version}
	for _, bin := range []struct{ path, pkg string }{{t.Lifecycle, Module + "/cmd/lifecycle"}, {t.Launcher, Module + "/cmd/launcher"}} {
		if err := checkBuiltFrom(bin.path, bin.pkg, pinned); err != nil {
			return nil, exit.New(exit.Builder, "--lifecycle-dir", err,
				fmt.Sprintf("put the lifecycle and launcher built from %s@%s next to cipack (make build does), or pass --trust-builder to run the builder's own lifecycle with the credentials", Module, pinned.Version))
		}
	}
	return t, nil
}

func checkBuiltFrom(path, pkg string, pinned *debug.Module) error {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return fmt.Errorf("trusted lifecycle %s: %w", path, err)
	}
	if bi.Path != pkg {
		return fmt.Errorf("trusted lifecycle %s is built from %q, not %s", path, bi.Path, pkg)
	}
	m := &bi.Main
	if m.Path != Module {
		m = nil
		for _, d := range bi.Deps {
			if d.Path == Module {
				m = d
			}
		}
	}
	if m == nil {
		return fmt.Errorf("trusted lifecycle %s records no %s module", path, Module)
	}
	if m.Replace != nil {
		m = m.Replace
	}
	if m.Version != pinned.Version || (m.Sum != "" && pinned.Sum != "" && m.Sum != pinned.Sum) {
		return fmt.Errorf("trusted lifecycle %s is %s %s, cipack pins %s %s", path, Module, m.Version, pinned.Version, pinned.Sum)
	}
	return nil
}

// PinnedModule returns the lifecycle module recorded in bi (cipack's own
// build info), or nil.
func PinnedModule(bi *debug.BuildInfo) *debug.Module {
	if bi == nil {
		return nil
	}
	for _, d := range bi.Deps {
		if d.Path == Module {
			if d.Replace != nil {
				return d.Replace
			}
			return d
		}
	}
	return nil
}
