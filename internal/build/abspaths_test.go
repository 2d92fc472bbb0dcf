package build

import (
	"os"
	"path/filepath"
	"testing"
)

// Relative path flags become absolute against the working directory the
// edge read, during Validate: nothing later depends on the working
// directory of whatever thread or child reads them.
func TestValidateMakesRelativePathsAbsolute(t *testing.T) {
	cwd := t.TempDir()
	if err := os.Mkdir(filepath.Join(cwd, "app"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cwd, "app", "main.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cwd, "build.env"), []byte("A=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{Image: "registry.example/team/app:latest", Cwd: cwd, AppPath: "app", SourceRoot: ".",
		CacheDir: ".cache", SBOMDir: "sbom", LayersDir: "layers", CNBDir: "cnb", BuilderCache: "store", BuilderBlobs: "blobs",
		LifecycleDir: "bin", Descriptor: "app/project.toml", EnvFiles: []string{"build.env"}, Runtime: "./rt/runc"}
	t.Chdir(filepath.Join(cwd, "app")) // not where the paths are meant: Cwd decides
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	for flag, c := range map[string]struct{ got, want string }{
		"--path": {o.AppPath, "app"}, "--source-root": {o.SourceRoot, ""}, "--cache-dir": {o.CacheDir, ".cache"},
		"--sbom-dir": {o.SBOMDir, "sbom"}, "--layers-dir": {o.LayersDir, "layers"}, "--cnb-dir": {o.CNBDir, "cnb"},
		"--builder-cache": {o.BuilderCache, "store"}, "--builder-blobs": {o.BuilderBlobs, "blobs"},
		"--lifecycle-dir": {o.LifecycleDir, "bin"}, "--descriptor": {o.Descriptor, "app/project.toml"},
		"--env-file": {o.EnvFiles[0], "build.env"}, "--oci-runtime": {o.Runtime, "rt/runc"},
	} {
		if want := filepath.Join(cwd, c.want); c.got != want {
			t.Errorf("%s = %q, want %q", flag, c.got, want)
		}
	}
	named := Options{Image: "registry.example/team/app:latest", Cwd: cwd, AppPath: "app", Runtime: "crun"}
	if err := named.Validate(); err != nil {
		t.Fatal(err)
	}
	if named.Runtime != "crun" || named.CacheDir != "" {
		t.Errorf("a runtime name or an unset flag changed: %q %q", named.Runtime, named.CacheDir)
	}
}
