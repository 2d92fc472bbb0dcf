package testenv

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/BurntSushi/toml"
)

// Buildpack is a buildpack directory to put in the builder.
type Buildpack struct {
	ID, Version string
	Dir         string // source directory: buildpack.toml and bin/
}

// BuilderSpec describes a test builder's /cnb directory.
type BuilderSpec struct {
	LifecycleDir string // holds lifecycle and launcher binaries
	RunImage     string
	RunMirrors   []string
	Buildpacks   []Buildpack
	// VersionOverride rewrites buildpack versions (id → version), to make
	// a "buildpack moved" builder from the same sources.
	VersionOverride map[string]string
}

// ExampleBuildpacks are the two buildpacks shipped in examples/buildpacks.
func ExampleBuildpacks() ([]Buildpack, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	return []Buildpack{
		{ID: "cipack-examples/shell", Version: "0.0.1", Dir: filepath.Join(root, "examples", "buildpacks", "shell")},
		{ID: "cipack-examples/cache", Version: "0.0.1", Dir: filepath.Join(root, "examples", "buildpacks", "cache")},
	}, nil
}

// MakeBuilder lays out a builder's /cnb under dir: lifecycle (the
// multi-call binary under each phase name), buildpacks, order.toml and
// run.toml. It returns dir.
func MakeBuilder(dir string, spec BuilderSpec) (string, error) {
	lc := filepath.Join(dir, "lifecycle")
	if err := os.MkdirAll(lc, 0o755); err != nil {
		return "", err
	}
	for _, bin := range []string{"lifecycle", "launcher"} {
		if err := copyFile(filepath.Join(spec.LifecycleDir, bin), filepath.Join(lc, bin), 0o755); err != nil {
			return "", err
		}
	}
	for _, p := range LifecyclePhases {
		if err := os.Symlink("lifecycle", filepath.Join(lc, p)); err != nil && !os.IsExist(err) {
			return "", err
		}
	}
	var order struct {
		Order []struct {
			Group []map[string]string `toml:"group"`
		} `toml:"order"`
	}
	order.Order = append(order.Order, struct {
		Group []map[string]string `toml:"group"`
	}{})
	for _, bp := range spec.Buildpacks {
		version := bp.Version
		if v, ok := spec.VersionOverride[bp.ID]; ok {
			version = v
		}
		dst := filepath.Join(dir, "buildpacks", strings.ReplaceAll(bp.ID, "/", "_"), version)
		if err := copyTree(bp.Dir, dst); err != nil {
			return "", err
		}
		if version != bp.Version {
			if err := rewriteVersion(filepath.Join(dst, "buildpack.toml"), version); err != nil {
				return "", err
			}
		}
		order.Order[0].Group = append(order.Order[0].Group, map[string]string{"id": bp.ID, "version": version})
	}
	if err := writeTOML(filepath.Join(dir, "order.toml"), order); err != nil {
		return "", err
	}
	run := map[string]any{"images": []map[string]any{{"image": spec.RunImage, "mirrors": spec.RunMirrors}}}
	if err := writeTOML(filepath.Join(dir, "run.toml"), run); err != nil {
		return "", err
	}
	return dir, nil
}

func rewriteVersion(path, version string) error {
	var bp map[string]any
	if _, err := toml.DecodeFile(path, &bp); err != nil {
		return err
	}
	bp["buildpack"].(map[string]any)["version"] = version
	return writeTOML(path, bp)
}

func writeTOML(path string, v any) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := toml.NewEncoder(f).Encode(v); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return copyFile(p, target, fi.Mode().Perm()|0o444)
	})
}

// copyFile copies a trusted test file (a lifecycle binary, a buildpack's
// own file) with mode, through a temporary file renamed into place: a
// builder dir can be remade while an earlier test's binary in it runs, and
// writing into a running binary fails (ETXTBSY). These are the tests' own
// files, so none of internal/safefs's care is needed.
func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".copy-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}
