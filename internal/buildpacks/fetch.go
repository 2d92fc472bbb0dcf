package buildpacks

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/buildpack"
	"github.com/buildpacks/lifecycle/launch"

	"github.com/cipack/cipack/internal/safefs"
)

// Module is one buildpack the lifecycle will hold.
type Module struct {
	ID, Version, API string
	// Dir is the buildpack's directory on the host, under the plan's
	// work dir: a copy, never the user's or the registry's own files.
	Dir  string
	Desc *buildpack.BpDescriptor
	// From is what the user wrote that brought it.
	From Source
}

// Package is a buildpackage image, unpacked: its layers' trees (lowest
// first) and its labels.
type Package struct {
	Ref    string
	Layers []string
	Labels map[string]string
}

// Fetcher pulls a buildpackage image by digest and unpacks it through
// the verified layer store. fromApp says the app (its project.toml or a
// package.toml in it) named the image: it is then read without the
// user's credentials.
type Fetcher interface {
	Fetch(ctx context.Context, ref string, fromApp bool) (*Package, error)
}

// Bounds on what one buildpack may bring: descriptors are a few KiB,
// buildpacks rarely more than a few hundred MiB.
const (
	maxDescriptor = 1 << 20
	maxBuildpack  = 4 << 30
)

// fetcher fetches located buildpacks into work, one staging dir each.
type fetcher struct {
	ctx   context.Context
	work  string
	pull  Fetcher
	n     int
	found []Module
	// seen are the paths and images fetched so far: a package.toml that
	// names itself, or a cycle of them, is fetched once.
	seen map[string]bool
}

// maxFetches bounds what one request may bring in, package.toml
// dependencies included.
const maxFetches = 256

func (f *fetcher) staging() string {
	f.n++
	return filepath.Join(f.work, fmt.Sprintf(".src-%d", f.n))
}

// fetch brings l (and, for a package, everything in it) into work and
// returns the main buildpack's id and version.
func (f *fetcher) fetch(l Located) (buildpack.GroupElement, error) {
	if f.n >= maxFetches {
		return buildpack.GroupElement{}, l.errorf("name fewer buildpacks", "more than %d buildpacks to fetch", maxFetches)
	}
	switch l.Kind {
	case Dir:
		return f.fromDir(l)
	case Archive:
		return f.fromArchive(l)
	case Image:
		return f.fromImage(l)
	case Inline:
		return f.fromScript(l)
	}
	return buildpack.GroupElement{}, fmt.Errorf("buildpack %q: nothing to fetch", l.Raw)
}

func (f *fetcher) fromDir(l Located) (buildpack.GroupElement, error) {
	if l.Root != "" {
		if err := noLinks(l.Root, l.Path); err != nil {
			return buildpack.GroupElement{}, l.errorf("keep the buildpack a real directory inside the app", "%v", err)
		}
	}
	f.see(l.Path)
	dst := f.staging()
	if _, err := safefs.CopyTree(l.Path, dst, safefs.CopyOptions{SkipHardLinks: l.Root != "", MaxBytes: maxBuildpack}); err != nil {
		return buildpack.GroupElement{}, l.errorf("give a readable buildpack directory", "%v", err)
	}
	main, err := f.adopt(l.Source, dst)
	if err != nil {
		return main, err
	}
	return main, f.dependencies(l, main)
}

// dependencies fetches what a composite directory's package.toml names,
// as pack does for `--buildpack DIR` (relative to the buildpack's uri).
func (f *fetcher) dependencies(l Located, main buildpack.GroupElement) error {
	raw, err := safefs.ReadFile(l.Path, "package.toml", maxDescriptor)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return l.errorf("make package.toml a regular file", "%v", err)
	}
	var pkg struct {
		Buildpack struct {
			URI string `toml:"uri"`
		} `toml:"buildpack"`
		Dependencies []struct {
			URI   string `toml:"uri"`
			Image string `toml:"image"`
		} `toml:"dependencies"`
	}
	if _, err := toml.Decode(string(raw), &pkg); err != nil {
		return l.errorf("fix package.toml", "package.toml: %v", err)
	}
	for _, dep := range pkg.Dependencies {
		src := Source{Raw: dep.URI, Input: l.Input, Base: filepath.Join(l.Path, pkg.Buildpack.URI), Root: l.Root}
		if dep.Image != "" {
			src.Raw = dockerPrefix + dep.Image
		}
		loc, err := Locate(src, func(string, string) bool { return false }, exists)
		if err != nil {
			return err
		}
		if loc.Kind != Dir && loc.Kind != Archive && loc.Kind != Image {
			return src.errorf("name a directory, an archive or an image", "a package.toml dependency of %s", main.ID)
		}
		if key := loc.Path + loc.Ref; f.seen[key] {
			continue
		}
		if _, err := f.fetch(loc); err != nil {
			return err
		}
	}
	return nil
}

func (f *fetcher) fromArchive(l Located) (buildpack.GroupElement, error) {
	if l.Root != "" {
		if err := noLinks(l.Root, l.Path); err != nil {
			return buildpack.GroupElement{}, l.errorf("keep the archive a regular file inside the app", "%v", err)
		}
	}
	f.see(l.Path)
	file, err := openArchive(l.Path, l.Root != "")
	if err != nil {
		return buildpack.GroupElement{}, l.errorf("give a .tgz (a regular file) of a buildpack directory", "%v", err)
	}
	defer file.Close()
	var r io.Reader = file
	if !strings.HasSuffix(l.Path, ".tar") {
		gz, err := gzip.NewReader(file)
		if err != nil {
			return buildpack.GroupElement{}, l.errorf("give a gzip-compressed tar of a buildpack directory", "%v", err)
		}
		defer gz.Close()
		r = gz
	}
	// The tar's owners and setuid bits are the archive author's: it is
	// unpacked where no one else can reach it, then copied as cipack's
	// own files (CopyTree keeps neither), like every other buildpack.
	raw := f.staging()
	if err := os.Mkdir(raw, 0o700); err != nil {
		return buildpack.GroupElement{}, err
	}
	defer os.RemoveAll(raw)
	if _, err := safefs.ExtractLayer(f.ctx, r, raw, safefs.Limits{MaxBytes: maxBuildpack}); err != nil {
		return buildpack.GroupElement{}, l.errorf("give a tar of a buildpack directory (buildpack.toml at its root)", "%v", err)
	}
	dst := f.staging()
	if _, err := safefs.CopyTree(raw, dst, safefs.CopyOptions{MaxBytes: maxBuildpack}); err != nil {
		return buildpack.GroupElement{}, l.errorf("give a tar of a buildpack directory", "%v", err)
	}
	return f.adopt(l.Source, dst)
}

// fromScript writes an inline buildpack as pack does
// (pkg/client/build.go createInlineBuildpack): detect always passes,
// build runs the script with its shell; the version defaults to 0.0.0.
func (f *fetcher) fromScript(l Located) (buildpack.GroupElement, error) {
	s := l.Script
	if s.API == "" || l.ID == "" {
		return buildpack.GroupElement{}, l.errorf("give the inline buildpack an id and script.api", "an inline buildpack needs an id and an api")
	}
	version, shell := l.Version, s.Shell
	if version == "" {
		version = "0.0.0"
	}
	if shell == "" {
		shell = "/bin/sh"
	}
	desc := struct {
		API       string `toml:"api"`
		Buildpack struct {
			ID      string `toml:"id"`
			Version string `toml:"version"`
		} `toml:"buildpack"`
	}{API: s.API}
	desc.Buildpack.ID, desc.Buildpack.Version = l.ID, version
	dst := f.staging()
	if err := os.MkdirAll(filepath.Join(dst, "bin"), 0o755); err != nil {
		return buildpack.GroupElement{}, err
	}
	var b strings.Builder
	if err := toml.NewEncoder(&b).Encode(desc); err != nil {
		return buildpack.GroupElement{}, err
	}
	files := map[string]string{
		"buildpack.toml": b.String(),
		"bin/build":      fmt.Sprintf("#!%s\n\n%s\n", shell, s.Inline),
		"bin/detect":     fmt.Sprintf("#!%s\n\nexit 0\n", shell),
	}
	for name, body := range files {
		mode := os.FileMode(0o755)
		if name == "buildpack.toml" {
			mode = 0o644
		}
		if err := os.WriteFile(filepath.Join(dst, name), []byte(body), mode); err != nil {
			return buildpack.GroupElement{}, err
		}
	}
	return f.adopt(l.Source, dst)
}

// adopt reads the staged buildpack's descriptor, checks its id and
// version, and moves it to work/<escaped id>/<version>.
func (f *fetcher) adopt(s Source, staged string) (buildpack.GroupElement, error) {
	fi, err := os.Lstat(filepath.Join(staged, "buildpack.toml"))
	if err != nil || !fi.Mode().IsRegular() || fi.Size() > maxDescriptor {
		return buildpack.GroupElement{}, s.errorf("give a buildpack: a directory with buildpack.toml at its root",
			"no buildpack.toml (a regular file of at most 1 MiB) at its root")
	}
	d, err := buildpack.ReadBpDescriptor(filepath.Join(staged, "buildpack.toml"))
	if err != nil {
		return buildpack.GroupElement{}, s.errorf("fix buildpack.toml", "buildpack.toml: %v", err)
	}
	id, version := d.Buildpack.ID, d.Buildpack.Version
	if err := ValidID(id); err != nil {
		return buildpack.GroupElement{}, s.errorf("fix buildpack.toml", "%v", err)
	}
	if err := ValidVersion(version); err != nil {
		return buildpack.GroupElement{}, s.errorf("fix buildpack.toml", "%s: %v", id, err)
	}
	if err := readOnly(staged); err != nil {
		return buildpack.GroupElement{}, err
	}
	dst := filepath.Join(f.work, launch.EscapeID(id), version)
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return buildpack.GroupElement{}, err
	}
	// A later buildpack of the same id and version replaces an earlier
	// one, as a later layer does in pack's ephemeral builder.
	_ = os.RemoveAll(dst)
	if err := os.Rename(staged, dst); err != nil {
		return buildpack.GroupElement{}, err
	}
	if err := os.Chmod(dst, 0o755); err != nil {
		return buildpack.GroupElement{}, err
	}
	d.WithRootDir = dst
	m := Module{ID: id, Version: version, API: d.WithAPI, Dir: dst, Desc: d, From: s}
	f.found = append(f.found, m)
	return buildpack.GroupElement{ID: id, Version: version}, nil
}

// noLinks checks that no component of path below root is a symbolic
// link.
func noLinks(root, path string) error {
	rel, err := filepath.Rel(root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s is outside %s", path, root)
	}
	p := root
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if part == "." {
			continue
		}
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("%s is a symbolic link", p)
		}
	}
	return nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func (f *fetcher) see(key string) {
	if f.seen == nil {
		f.seen = map[string]bool{}
	}
	f.seen[key] = true
}

// openArchive opens a regular file without blocking on a FIFO and
// without following a final link; an app's archive must also have no
// other hard link (one could be a file outside the app).
func openArchive(p string, fromApp bool) (*os.File, error) {
	file, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	fi, err := file.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", p)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); err == nil && fromApp && ok && st.Nlink > 1 {
		err = fmt.Errorf("%s has other hard links", p)
	}
	if err != nil {
		file.Close()
		return nil, err
	}
	return file, nil
}

// readOnly makes a fetched buildpack's tree no one's to change but
// cipack's: group and other write bits, setuid, setgid and sticky bits
// go (links are left as they are).
func readOnly(dir string) error {
	return filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeSymlink != 0 {
			return err
		}
		fi, err := e.Info()
		if err != nil {
			return err
		}
		if m := fi.Mode(); m&(0o022|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0 {
			return os.Chmod(p, m.Perm()&^0o022)
		}
		return nil
	})
}
