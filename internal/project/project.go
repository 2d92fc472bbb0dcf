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
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/safefs"
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

// maxDescriptor bounds project.toml: a real one is a few hundred bytes.
const maxDescriptor = 1 << 20

// Load reads path. A missing file is no descriptor (nil, nil) unless
// required (the user named it).
func Load(path string, required bool) (*Descriptor, error) {
	b, err := read(path, required)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil, nil
	}
	if err != nil {
		if required {
			return nil, exit.Usagef("--descriptor", "point it at the app's project.toml", "%v", err)
		}
		return nil, exit.Usagef(path, "make project.toml a regular file inside the app, or remove it", "%v", err)
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

// read reads the descriptor. Named with --descriptor (required), it is the
// user's own path: links on it are followed, since the user chose them.
// Otherwise it is the app's own project.toml, and the app may come from
// anyone (a pull request): it is read inside the app directory, so a link
// leads at most elsewhere in the app, never to a secret outside it, and a
// FIFO, a device or a huge file is refused instead of hanging the build or
// exhausting memory. Both are regular files of at most maxDescriptor.
func read(path string, required bool) ([]byte, error) {
	if required {
		return safefs.ReadUserFile(path, maxDescriptor)
	}
	return safefs.ReadFile(filepath.Dir(path), filepath.Base(path), maxDescriptor)
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

// Copy copies the app at src into dst (a new or empty directory) as the
// build should see it: with include, only the matching files; with
// exclude, all but the matching ones (gitignore-like patterns: a pattern
// without "/" matches a name at any depth, one with "/" a path from the
// app's root; "*", "?" and "**" as in gitignore). The app may come from
// anyone, so the copy is safefs.CopyTree's: links are copied as links,
// never followed; FIFOs, devices and other mounts are left out; files with
// more than one hard link are left out (SkippedLinks), since the copy is
// made as root and another link may be outside the app (/etc/shadow).
// Directories are made only when something inside them is copied, so an
// excluded tree leaves no trace.
func (d *Descriptor) Copy(src, dst string) error {
	stats, err := safefs.CopyTree(src, dst, safefs.CopyOptions{
		Filter:         d.keep,
		SkipHardLinks:  true,
		PruneEmptyDirs: true,
	})
	d.SkippedLinks = stats.SkippedLinks
	return err
}

// Filter is the include/exclude filter for safefs.CopyTree, or nil when
// the descriptor narrows nothing.
func (d *Descriptor) Filter() func(rel string, isDir bool) bool {
	if !d.Filters() {
		return nil
	}
	return d.keep
}

// keep is the include/exclude filter: an excluded directory drops its
// subtree; with include, directories are entered and files must match.
func (d *Descriptor) keep(rel string, isDir bool) bool {
	if len(d.Exclude) > 0 && matchAny(d.Exclude, rel) {
		return false
	}
	return isDir || len(d.Include) == 0 || matchAny(d.Include, rel)
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
