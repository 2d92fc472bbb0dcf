package buildpacks

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/buildpacks/lifecycle/platform/files"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
)

// writeBP writes a buildpack directory: buildpack.toml with extra TOML
// after [buildpack], and bin/detect, bin/build.
func writeBP(t *testing.T, dir, api, id, version, extra string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	toml := fmt.Sprintf("api = %q\n[buildpack]\nid = %q\nversion = %q\n%s", api, id, version, extra)
	must(t, os.WriteFile(filepath.Join(dir, "buildpack.toml"), []byte(toml), 0o644))
	for _, b := range []string{"detect", "build"} {
		must(t, os.WriteFile(filepath.Join(dir, "bin", b), []byte("#!/bin/sh\nexit 0\n"), 0o755))
	}
	return dir
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fakePackages serves buildpackages from directories laid out as their
// layers would be.
type fakePackages map[string]*Package

func (f fakePackages) Fetch(_ context.Context, ref string, _ bool) (*Package, error) {
	if p, ok := f[ref]; ok {
		return p, nil
	}
	return nil, exit.New(exit.ImageNotFound, ref, errors.New("not found"), "")
}

func amd64() files.TargetMetadata { return files.TargetMetadata{OS: "linux", Arch: "amd64"} }

func resolve(t *testing.T, r Request, pkgs fakePackages) (*Plan, error) {
	t.Helper()
	r.Work = t.TempDir()
	if r.Target.OS == "" {
		r.Target = amd64()
	}
	return Resolve(context.Background(), r, pkgs)
}

func TestResolveFetchesEachForm(t *testing.T) {
	base := t.TempDir()
	writeBP(t, filepath.Join(base, "dir-bp"), "0.10", "me/dir", "1.0.0", "")
	writeBP(t, filepath.Join(base, "tgz-src"), "0.10", "me/tgz", "2.0.0", "")
	tgz(t, filepath.Join(base, "tgz-src"), filepath.Join(base, "bp.tgz"))
	layer := t.TempDir()
	writeBP(t, filepath.Join(layer, "cnb/buildpacks/me_img/3.0.0"), "0.10", "me/img", "3.0.0", "")
	pkgs := fakePackages{"registry.example/me/img:3": {Ref: "registry.example/me/img@sha256:" + sixtyFour, Layers: []string{layer},
		Labels: map[string]string{cnb.BuildpackageMetadataLabel: `{"id":"me/img","version":"3.0.0"}`, cnb.BuildpackLayersLabel: `{"me/img":{"3.0.0":{"api":"0.10"}}}`}}}
	builder := Builder{Versions: map[string][]string{"b/one": {"1"}}, Order: groups([]string{"b/one"})}
	p, err := resolve(t, Request{Builder: builder, Group: []Source{
		{Raw: "dir-bp", Base: base, Input: "--buildpack"},
		{Raw: "bp.tgz", Base: base, Input: "--buildpack"},
		{Raw: "docker://registry.example/me/img:3", Base: base, Input: "--buildpack"},
		{ID: "me/inline", Script: &Script{API: "0.10", Inline: "echo hi"}, Input: "project.toml"},
		{Raw: "b/one@1", Base: base, Input: "--buildpack"},
	}}, pkgs)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range p.Order[0].Group {
		got = append(got, e.ID+"@"+e.Version)
	}
	if want := "me/dir@1.0.0 me/tgz@2.0.0 me/img@3.0.0 me/inline@0.0.0 b/one@1"; strings.Join(got, " ") != want {
		t.Fatalf("group %v, want %s", got, want)
	}
	for _, m := range p.Extra {
		if _, err := os.Stat(filepath.Join(m.Dir, "buildpack.toml")); err != nil || filepath.Base(m.Dir) != m.Version {
			t.Fatalf("%s not laid out at ID/VERSION: %s (%v)", m.ID, m.Dir, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(p.Extra[3].Dir, "bin", "build"))
	if err != nil || !strings.Contains(string(b), "#!/bin/sh") || !strings.Contains(string(b), "echo hi") {
		t.Fatalf("inline build script: %q (%v)", b, err)
	}
}

func TestResolveRefusesWhatTheLifecycleWouldNotRun(t *testing.T) {
	base := t.TempDir()
	writeBP(t, filepath.Join(base, "old-api"), "0.1", "me/old", "1", "")
	writeBP(t, filepath.Join(base, "arm"), "0.10", "me/arm", "1", "[[targets]]\nos = \"linux\"\narch = \"arm64\"\n")
	writeBP(t, filepath.Join(base, "any"), "0.10", "me/any", "1", "[[targets]]\nos = \"linux\"\narch = \"arm64\"\n[[targets]]\nos = \"linux\"\narch = \"amd64\"\n[[targets.distros]]\nname = \"ubuntu\"\n")
	writeBP(t, filepath.Join(base, "dotdot"), "0.10", "me/x", "../../b_one/1", "")
	writeBP(t, filepath.Join(base, "composite"), "0.10", "me/meta", "1", "[[order]]\n[[order.group]]\nid = \"me/child\"\nversion = \"1\"\n")
	must(t, os.RemoveAll(filepath.Join(base, "composite", "bin")))
	must(t, os.Symlink("/etc/passwd", filepath.Join(base, "linked-toml")))
	must(t, os.MkdirAll(filepath.Join(base, "toml-link"), 0o755))
	must(t, os.Symlink("/etc/passwd", filepath.Join(base, "toml-link", "buildpack.toml")))
	for _, tc := range []struct {
		raw, want string
	}{
		{"old-api", "Buildpack API 0.1 is not supported"},
		{"arm", "exclude the run image (linux/amd64)"},
		{"dotdot", "the version"},
		{"composite", "me/child@1, which neither it nor the builder brings"},
		{"toml-link", "no buildpack.toml"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			_, err := resolve(t, Request{Group: []Source{{Raw: tc.raw, Base: base, Input: "--buildpack"}}}, nil)
			if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.raw) {
				t.Fatalf("want exit 2 naming %s with %q, got %v", tc.raw, tc.want, err)
			}
		})
	}
	if _, err := resolve(t, Request{Group: []Source{{Raw: "any", Base: base}}}, nil); err != nil {
		t.Fatalf("a buildpack with one matching target (and a distro the run image's labels decide at detect): %v", err)
	}
}

func TestResolveKeepsProjectPathsInTheApp(t *testing.T) {
	app := t.TempDir()
	writeBP(t, filepath.Join(t.TempDir(), "x"), "0.10", "me/x", "1", "")
	outside := writeBP(t, filepath.Join(t.TempDir(), "outside"), "0.10", "me/out", "1", "")
	must(t, os.Symlink(outside, filepath.Join(app, "link")))
	must(t, os.MkdirAll(filepath.Join(app, "sub"), 0o755))
	must(t, os.Symlink(outside, filepath.Join(app, "sub", "deeper")))
	for _, raw := range []string{"link", "sub/deeper", outside, "../" + filepath.Base(outside)} {
		_, err := resolve(t, Request{Group: []Source{{Raw: raw, Base: app, Root: app, Input: "project.toml"}}}, nil)
		if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "project.toml") {
			t.Fatalf("%s: want exit 2 naming project.toml, got %v", raw, err)
		}
	}
}

func TestResolveTakesACompositeWithItsPackageDependencies(t *testing.T) {
	base := t.TempDir()
	writeBP(t, filepath.Join(base, "meta"), "0.10", "me/meta", "1", "[[order]]\n[[order.group]]\nid = \"me/child\"\nversion = \"1\"\n")
	must(t, os.WriteFile(filepath.Join(base, "meta", "package.toml"), []byte("[buildpack]\nuri = \".\"\n[[dependencies]]\nuri = \"../child\"\n"), 0o644))
	writeBP(t, filepath.Join(base, "child"), "0.10", "me/child", "1", "")
	p, err := resolve(t, Request{Group: []Source{{Raw: "meta", Base: base}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Extra) != 2 || p.Extra[1].ID != "me/child" || p.Order[0].Group[0].ID != "me/meta" {
		t.Fatalf("extra %+v order %+v", p.Extra, p.Order)
	}
}

func TestResolveDropsEntriesOfOtherExecEnvs(t *testing.T) {
	base := t.TempDir()
	writeBP(t, filepath.Join(base, "a"), "0.10", "me/a", "1", "")
	writeBP(t, filepath.Join(base, "t"), "0.10", "me/t", "1", "")
	srcs := []Source{{Raw: "a", Base: base}, {Raw: "t", Base: base, ExecEnv: []string{"test"}}}
	for env, want := range map[string]int{"production": 1, "test": 2} {
		p, err := resolve(t, Request{Group: srcs, ExecEnv: env}, nil)
		if err != nil || len(p.Order[0].Group) != want {
			t.Fatalf("%s: %+v %v", env, p, err)
		}
	}
}

func TestResolveRefusesAHostileBuildpackage(t *testing.T) {
	layer := t.TempDir()
	writeBP(t, filepath.Join(layer, "cnb/buildpacks/me_img/1"), "0.10", "me/other", "1", "")
	for name, labels := range map[string]map[string]string{
		"no labels":        {},
		"id with ..":       {cnb.BuildpackageMetadataLabel: `{"id":"../x","version":"1"}`, cnb.BuildpackLayersLabel: `{"../x":{"1":{}}}`},
		"version with ..":  {cnb.BuildpackageMetadataLabel: `{"id":"me/img","version":"../1"}`, cnb.BuildpackLayersLabel: `{"me/img":{"../1":{}}}`},
		"layer mislabeled": {cnb.BuildpackageMetadataLabel: `{"id":"me/img","version":"1"}`, cnb.BuildpackLayersLabel: `{"me/img":{"1":{}}}`},
		"not in layers":    {cnb.BuildpackageMetadataLabel: `{"id":"me/nope","version":"1"}`, cnb.BuildpackLayersLabel: `{"me/nope":{"1":{}}}`},
	} {
		t.Run(name, func(t *testing.T) {
			pkgs := fakePackages{"r.example/bp:1": {Ref: "r.example/bp:1", Layers: []string{layer}, Labels: labels}}
			_, err := resolve(t, Request{Group: []Source{{Raw: "docker://r.example/bp:1", Input: "--buildpack"}}}, pkgs)
			if exit.Code(err) != exit.Usage {
				t.Fatalf("want exit 2, got %v", err)
			}
		})
	}
}

func tgz(t *testing.T, dir, out string) {
	t.Helper()
	f, err := os.Create(out)
	must(t, err)
	defer f.Close()
	gz := gzip.NewWriter(f)
	tw := tar.NewWriter(gz)
	must(t, filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h, err := tar.FileInfoHeader(fi, "")
		if err != nil {
			return err
		}
		h.Name = rel
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = tw.Write(b)
			return err
		}
		return nil
	}))
	must(t, tw.Close())
	must(t, gz.Close())
}

func TestResolveSurvivesHostileAppArchivesAndPackages(t *testing.T) {
	app := t.TempDir()
	writeBP(t, filepath.Join(app, "self"), "0.10", "me/self", "1", "")
	must(t, os.WriteFile(filepath.Join(app, "self", "package.toml"), []byte("[buildpack]\nuri = \".\"\n[[dependencies]]\nuri = \".\"\n"), 0o644))
	writeBP(t, filepath.Join(app, "a"), "0.10", "me/a", "1", "")
	writeBP(t, filepath.Join(app, "b"), "0.10", "me/b", "1", "")
	must(t, os.WriteFile(filepath.Join(app, "a", "package.toml"), []byte("[[dependencies]]\nuri = \"../b\"\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(app, "b", "package.toml"), []byte("[[dependencies]]\nuri = \"../a\"\n"), 0o644))
	must(t, syscall.Mkfifo(filepath.Join(app, "fifo.tgz"), 0o644))
	writeBP(t, filepath.Join(t.TempDir(), "src"), "0.10", "me/linked", "1", "")
	outside := filepath.Join(t.TempDir(), "outside.tgz")
	tgz(t, writeBP(t, filepath.Join(t.TempDir(), "x"), "0.10", "me/x", "1", ""), outside)
	must(t, os.Link(outside, filepath.Join(app, "linked.tgz")))
	writeBP(t, filepath.Join(app, "impostor"), "0.10", "b/one", "1", "")
	builder := Builder{Versions: map[string][]string{"b/one": {"1"}}}
	for _, tc := range []struct {
		uri, want string
	}{
		{"self", ""},
		{"a", ""},
		{"fifo.tgz", "not a regular file"},
		{"linked.tgz", "other hard links"},
		{"impostor", "may not replace it"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := resolve(t, Request{Builder: builder, Group: []Source{{Raw: tc.uri, Base: app, Root: app, Input: "project.toml"}}}, nil)
				done <- err
			}()
			select {
			case err := <-done:
				if tc.want == "" && err != nil {
					t.Fatal(err)
				}
				if tc.want != "" && (exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), tc.want)) {
					t.Fatalf("want exit 2 with %q, got %v", tc.want, err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Resolve did not return in 10 s")
			}
		})
	}
	// The user may replace a builder's buildpack with --buildpack, as in pack.
	if _, err := resolve(t, Request{Builder: builder, Group: []Source{{Raw: "impostor", Base: app, Input: "--buildpack"}}}, nil); err != nil {
		t.Fatalf("--buildpack replacing the builder's: %v", err)
	}
}
