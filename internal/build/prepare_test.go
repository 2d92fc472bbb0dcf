package build

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/platform/files"
	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/creator"
)

// The prepare stage, without root: the platform dir holds the build env
// (later sources win), a run.toml in the lifecycle's own type (pull mode
// writes one even without --run-image, keeping the builder's mirrors), a
// fresh layers dir with no stale report, and cleanup removes it all.
func TestPrepareLaysOutTheBuild(t *testing.T) {
	tmp, app := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(app, "app.sh"), []byte("echo hi"), 0o644); err != nil {
		t.Fatal(err)
	}
	image, _ := name.ParseReference("reg.example/app:latest")
	p := &buildPlan{
		builder: &creator.Builder{CNBDir: "/cnb", RunImage: files.RunImageForExport{Image: "reg.example/run:v1", Mirrors: []string{"mirror.example/run:v1"}}},
		files:   creator.LocalFiles{},
		host:    &pulledHost{},
		uid:     os.Getuid(), gid: os.Getgid(),
		refs:   preflightRefs{image: image},
		appDir: app,
		auth:   `{"reg.example":"Basic x"}`,
	}
	opts := Options{Env: []string{"A=from-flag", "B=x=y"}, fileEnv: []string{"A=from-file", "C=c"}, LayersDir: "/layers-unused"}
	w, err := prepare(context.Background(), p, opts, Deps{Log: io.Discard, TempDir: tmp, Euid: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{"A": "from-flag", "B": "x=y", "C": "c"} {
		if b, err := os.ReadFile(filepath.Join(w.platform, "env", k)); err != nil || string(b) != want {
			t.Errorf("env %s = %q %v, want %q", k, b, err, want)
		}
	}
	var run files.Run
	if _, err := toml.DecodeFile(w.runToml, &run); err != nil || len(run.Images) != 1 || run.Images[0].Image != "reg.example/run:v1" ||
		len(run.Images[0].Mirrors) != 1 {
		t.Errorf("run.toml %+v %v: want the builder's run image and its mirror", run, err)
	}
	if !strings.HasPrefix(w.layers, tmp) || w.app != app {
		t.Errorf("layers %s (want a fresh dir in %s), app %s (as non-root the app itself)", w.layers, tmp, w.app)
	}
	in := w.inputs(p, opts)
	if in.RegistryAuth != p.auth || in.ReportPath != filepath.Join(w.layers, "report.toml") || in.RunToml != w.runToml {
		t.Errorf("inputs %+v", in)
	}
	w.cleanup()
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("cleanup left %v", left)
	}
}
