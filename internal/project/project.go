// Package project reads an app's project descriptor (project.toml), the
// file pack honours and the bare lifecycle ignores: which files the build
// sees (include/exclude), build env vars, and a buildpack group. Schema
// 0.2 ([_] and [io.buildpacks]) and 0.1 ([project] and [build]), as pack
// reads them. Errors name the file and line.
package project

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/BurntSushi/toml"

	"github.com/cipack/cipack/internal/exit"
)

// Buildpack is one entry of the descriptor's group.
type Buildpack struct {
	ID      string `toml:"id"`
	Version string `toml:"version"`
}

// Descriptor is what cipack applies from project.toml.
type Descriptor struct {
	Path             string
	Include, Exclude []string
	Env              []string // KEY=VALUE, in file order
	Group            []Buildpack
	// Unsupported lists keys cipack does not apply, for a warning each.
	Unsupported []string
	// SkippedLinks lists the hard-linked files Copy left out.
	SkippedLinks []string
}

type envVar struct {
	Name  string `toml:"name"`
	Value string `toml:"value"`
}

type buildTable struct {
	Include    []string    `toml:"include"`
	Exclude    []string    `toml:"exclude"`
	Env        []envVar    `toml:"env"`
	Buildpacks []Buildpack `toml:"buildpacks"` // schema 0.1
}

type file struct {
	Underscore struct {
		SchemaVersion string `toml:"schema-version"`
	} `toml:"_"`
	IO struct {
		Buildpacks struct {
			Include []string    `toml:"include"`
			Exclude []string    `toml:"exclude"`
			Group   []Buildpack `toml:"group"`
			Build   struct {
				Env []envVar `toml:"env"`
			} `toml:"build"`
		} `toml:"buildpacks"`
	} `toml:"io"`
	Build buildTable `toml:"build"` // schema 0.1
}

// Keys that describe the project and change nothing in the build: read
// and accepted without a warning.
var informational = []string{"_", "project", "metadata"}

// Load reads path. A missing file is no descriptor (nil, nil) unless
// required (the user named it).
func Load(path string, required bool) (*Descriptor, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil, nil
	}
	if err != nil {
		return nil, exit.Usagef("--descriptor", "point it at the app's project.toml", "%v", err)
	}
	var f file
	md, err := toml.Decode(string(b), &f)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, exit.Usagef(fmt.Sprintf("%s:%d", path, pe.Position.Line), "fix the TOML", "%s", pe.Message)
		}
		return nil, exit.Usagef(path, "fix the file (see buildpacks.io project descriptor)", "%v", err)
	}
	d := &Descriptor{Path: path}
	io := f.IO.Buildpacks
	d.Include, d.Exclude, d.Group = io.Include, io.Exclude, io.Group
	envs := io.Build.Env
	if f.Underscore.SchemaVersion == "" && md.IsDefined("build") {
		// Schema 0.1.
		d.Include = append(d.Include, f.Build.Include...)
		d.Exclude = append(d.Exclude, f.Build.Exclude...)
		d.Group = append(d.Group, f.Build.Buildpacks...)
		envs = append(envs, f.Build.Env...)
	}
	if len(d.Include) > 0 && len(d.Exclude) > 0 {
		return nil, exit.Usagef(path, "keep include or exclude, not both (as pack requires)", "both include and exclude are set")
	}
	for _, e := range envs {
		if e.Name == "" {
			return nil, exit.Usagef(path, "give each [[io.buildpacks.build.env]] a name", "a build env entry has no name")
		}
		d.Env = append(d.Env, e.Name+"="+e.Value)
	}
	for _, bp := range d.Group {
		if bp.ID == "" {
			return nil, exit.Usagef(path, "give each group entry an id", "a buildpack group entry has no id")
		}
	}
	seen := map[string]bool{}
	for _, k := range md.Undecoded() {
		top := k[0]
		if isInformational(top) {
			continue
		}
		key := k.String()
		// Report the table, not every key in it.
		if len(k) > 2 {
			key = strings.Join(k[:3], ".")
		}
		if !seen[key] {
			seen[key] = true
			d.Unsupported = append(d.Unsupported, key)
		}
	}
	sort.Strings(d.Unsupported)
	return d, nil
}

func isInformational(top string) bool {
	for _, k := range informational {
		if top == k {
			return true
		}
	}
	return false
}

// Filters reports whether the descriptor narrows the files the build sees.
func (d *Descriptor) Filters() bool { return d != nil && (len(d.Include) > 0 || len(d.Exclude) > 0) }

// Copy copies the app at src into dst as the build should see it: with
// include, only the matching files; with exclude, all but the matching
// ones (gitignore-like patterns: a pattern without "/" matches a name at
// any depth, one with "/" a path from the app's root; "*", "?" and "**"
// as in gitignore). Links are copied as links, never followed; files with
// more than one hard link are left out (SkippedLinks).
func (d *Descriptor) Copy(src, dst string) error {
	return filepath.WalkDir(src, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return os.MkdirAll(dst, 0o755)
		}
		rel = filepath.ToSlash(rel)
		if len(d.Exclude) > 0 && matchAny(d.Exclude, rel) {
			if de.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		target := filepath.Join(dst, rel)
		if de.IsDir() {
			return nil // made when a file inside is copied
		}
		if len(d.Include) > 0 && !matchAny(d.Include, rel) {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			link, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		}
		if !fi.Mode().IsRegular() {
			return nil
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			// Another link may be outside the app (/etc/shadow): reading
			// it as root into a fresh file would hand its content to the
			// build user. Left out, and said so.
			d.SkippedLinks = append(d.SkippedLinks, rel)
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, fi.Mode().Perm())
	})
}

// matchAny matches rel (slash-separated, relative to the app) against
// gitignore-like patterns; a pattern that matches a directory matches
// everything under it.
func matchAny(patterns []string, rel string) bool {
	parts := strings.Split(rel, "/")
	for _, pat := range patterns {
		pat = strings.TrimSuffix(strings.TrimSpace(pat), "/")
		if pat == "" || strings.HasPrefix(pat, "#") {
			continue
		}
		if !strings.Contains(strings.TrimPrefix(pat, "/"), "/") && !strings.HasPrefix(pat, "/") {
			for _, part := range parts {
				if ok, _ := path.Match(pat, part); ok {
					return true
				}
			}
			continue
		}
		pat = strings.TrimPrefix(pat, "/")
		// Try the pattern against the path and each of its parent dirs.
		for i := len(parts); i > 0; i-- {
			if globPath(pat, strings.Join(parts[:i], "/")) {
				return true
			}
		}
	}
	return false
}

// globPath is path.Match with "**" matching any number of segments.
func globPath(pat, p string) bool {
	if !strings.Contains(pat, "**") {
		ok, _ := path.Match(pat, p)
		return ok
	}
	ps, ss := strings.Split(pat, "/"), strings.Split(p, "/")
	var rec func(i, j int) bool
	rec = func(i, j int) bool {
		if i == len(ps) {
			return j == len(ss)
		}
		if ps[i] == "**" {
			for k := j; k <= len(ss); k++ {
				if rec(i+1, k) {
					return true
				}
			}
			return false
		}
		if j == len(ss) {
			return false
		}
		if ok, _ := path.Match(ps[i], ss[j]); !ok {
			return false
		}
		return rec(i+1, j+1)
	}
	return rec(0, 0)
}
