// Package buildpacks brings buildpacks from outside the builder into a
// build, as pack does: it reads what the user named (--buildpack and its
// pre/post forms, or project.toml's groups), fetches each buildpack
// (a directory, a .tgz, a buildpackage image, or one the builder already
// has), checks it against the lifecycle, and lays the extra ones out
// where the lifecycle finds them — without changing the builder, its
// /cnb or the checkout.
//
// The plan is pure (Plan, tested as a table); fetching goes through a
// small Fetcher the build passes in, so the registry and the layer
// store stay where they belong.
package buildpacks

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/cipack/cipack/internal/exit"
)

// Kind is what a locator names.
type Kind int

const (
	// Dir is a buildpack directory (buildpack.toml at its root).
	Dir Kind = iota + 1
	// Archive is a .tgz (or .tar, .tar.gz) of a buildpack directory.
	Archive
	// Image is a buildpackage image in a registry.
	Image
	// FromBuilder is a buildpack the builder has, by id and version.
	FromBuilder
	// BuilderOrder is the builder's whole order (bare urn:cnb:builder,
	// pack's from=builder).
	BuilderOrder
	// Inline is a project.toml buildpack written as a script.
	Inline
)

// Prefixes pack accepts (pkg/buildpack/locator_type.go).
const (
	fromBuilderPrefix  = "urn:cnb:builder"
	deprecatedBuilder  = "from=builder"
	fromRegistryPrefix = "urn:cnb:registry"
	dockerPrefix       = "docker://"
)

// Source is one buildpack as the user wrote it, before anything is
// fetched.
type Source struct {
	// Raw is the locator as given; Input names where it came from
	// ("--buildpack", or project.toml's path) for errors.
	Raw, Input string
	// Base resolves a relative path: the working directory for a flag,
	// project.toml's directory for the descriptor.
	Base string
	// Root, when set, confines the path: it must stay inside Root and
	// pass through no symbolic link. project.toml comes with the app,
	// which anyone may have written (a pull request): its uri must not
	// name /root/.ssh and have build code read it.
	Root string
	// ID, Version are set for a project.toml entry given by id.
	ID, Version string
	// Script makes an Inline buildpack.
	Script *Script
	// ExecEnv lists the execution environments the entry runs in (empty:
	// all); the entry is dropped in others.
	ExecEnv []string
}

// Script is an inline buildpack's script, as project.toml gives it.
type Script struct{ API, Inline, Shell string }

// Located is a Source whose kind is known.
type Located struct {
	Source
	Kind Kind
	// Path is the host path of a Dir or an Archive.
	Path string
	// Ref is an Image's reference.
	Ref string
}

func (s Source) errorf(hint, format string, args ...any) error {
	return exit.Usagef(s.Input, hint, "buildpack %q: %s", s.String(), fmt.Sprintf(format, args...))
}

// String is the source as the user wrote it: the locator, or the id (and
// version) of a project.toml entry.
func (s Source) String() string {
	if s.Raw != "" || s.ID == "" {
		return s.Raw
	}
	return s.ID + at(s.Version)
}

// Locate decides what s names. A naked locator is, in order: a path when
// written as one, a buildpack of the builder, an image in a named
// registry, a path that exists, an image reference (pack tries a path
// that exists first: see below why not). builder tells whether the
// builder has id (at version, when not empty).
func Locate(s Source, builder func(id, version string) bool, exists func(string) bool) (Located, error) {
	l := Located{Source: s}
	raw := strings.TrimSpace(s.Raw)
	switch {
	case s.Script != nil:
		l.Kind = Inline
		return l, nil
	case raw == "" && s.ID != "":
		l.Kind = FromBuilder
		return l, nil
	case raw == fromBuilderPrefix || raw == deprecatedBuilder:
		l.Kind = BuilderOrder
		return l, nil
	case strings.HasPrefix(raw, fromBuilderPrefix+":") || strings.HasPrefix(raw, deprecatedBuilder+":"):
		_, rest, _ := strings.Cut(raw, ":")
		if strings.HasPrefix(raw, fromBuilderPrefix) {
			rest = strings.TrimPrefix(raw, fromBuilderPrefix+":")
		}
		l.Kind = FromBuilder
		l.ID, l.Version = splitIDVersion(rest)
		return l, nil
	case strings.HasPrefix(raw, fromRegistryPrefix+":"):
		return l, s.errorf("package the buildpack as an image and name it with docker://, or give its directory",
			"the Buildpack Registry (urn:cnb:registry) is not supported by cipack")
	case strings.HasPrefix(raw, dockerPrefix):
		l.Kind, l.Ref = Image, strings.TrimPrefix(raw, dockerPrefix)
		return l, nil
	case strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://"):
		return l, s.errorf("download the archive in an earlier step and pass its path", "cipack does not download buildpack archives")
	case strings.HasPrefix(raw, "file://"):
		raw = strings.TrimPrefix(raw, "file://")
	case raw == "":
		return l, s.errorf("give a path, an image, or ID@VERSION", "an empty buildpack locator")
	}
	if s.Root != "" {
		if err := confined(s, raw); err != nil {
			return l, err
		}
		// A link inside the app counts as there, whatever it points at:
		// fetching then refuses it for being a link.
		exists = lexists
	}
	// pack tries a path first. In CI the working directory is the
	// checkout, which anyone may have written: a name that could be one
	// of the builder's buildpacks or a registry's image is taken as such
	// unless it is written as a path (./x, /x, x/, x.tgz).
	pathLike := looksLikePath(raw)
	id, version := splitIDVersion(raw)
	if !pathLike && builder(id, version) {
		l.Kind, l.ID, l.Version = FromBuilder, id, version
		return l, nil
	}
	if !pathLike && registryRef(raw) {
		l.Kind, l.Ref = Image, raw
		return l, nil
	}
	if p, ok := localPath(s, raw, exists); ok {
		l.Path, l.Kind = p, Dir
		if isArchive(p) {
			l.Kind = Archive
		}
		return l, nil
	}
	if pathLike {
		return l, s.errorf("check the path (relative paths start at "+s.Base+")", "no such buildpack directory or archive")
	}
	if _, err := name.ParseReference(raw); err == nil && strings.Contains(raw, "/") {
		l.Kind, l.Ref = Image, raw
		return l, nil
	}
	if id, version := splitIDVersion(raw); version != "" || ValidID(id) == nil {
		return l, s.errorf("use a buildpack the builder has (cipack lists them in the error of an unknown one), or give a path or an image",
			"the builder has no buildpack %s", raw)
	}
	return l, s.errorf("give a directory, a .tgz, docker://IMAGE, urn:cnb:builder:ID or ID@VERSION", "not a buildpack locator")
}

// localPath resolves raw against the source's base and reports whether
// something is there.
func localPath(s Source, raw string, exists func(string) bool) (string, bool) {
	p := raw
	if !filepath.IsAbs(p) {
		p = filepath.Join(s.Base, p)
	}
	return filepath.Clean(p), exists(p)
}

// confined refuses a path that leaves the source's base: the app may
// come from anyone, its project.toml included.
func confined(s Source, raw string) error {
	hint := "name a buildpack inside the app with a relative path, or pass it with --buildpack"
	if filepath.IsAbs(raw) {
		return s.errorf(hint, "project.toml may name only paths inside the app")
	}
	rel, err := filepath.Rel(s.Root, filepath.Join(s.Base, raw))
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return s.errorf(hint, "the path leaves the app")
	}
	return nil
}

func lexists(p string) bool { _, err := os.Lstat(p); return err == nil }

func isArchive(p string) bool {
	for _, ext := range []string{".tgz", ".tar.gz", ".tar"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

// registryHost is a host name with a dot, or localhost, and an optional
// port, or any host with a port: how Docker tells a registry from a
// Docker Hub namespace (".cipack" or "my_dir" are no host names).
var registryHost = regexp.MustCompile(`^(([a-z0-9]([a-z0-9-]*[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+|localhost|\[[0-9a-f:]+\])(:[0-9]+)?$|^[a-z0-9]([a-z0-9-]*[a-z0-9])?:[0-9]+$`)

// registryRef reports whether raw is an image reference whose first part
// names a registry host.
func registryRef(raw string) bool {
	host, _, ok := strings.Cut(raw, "/")
	if !ok || !registryHost.MatchString(host) {
		return false
	}
	_, err := name.ParseReference(raw)
	return err == nil
}

func looksLikePath(raw string) bool {
	return strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "./") || strings.HasPrefix(raw, "../") ||
		strings.HasSuffix(raw, "/") || isArchive(raw)
}

// splitIDVersion splits ID@VERSION (the version may be absent).
func splitIDVersion(s string) (string, string) {
	id, version, _ := strings.Cut(s, "@")
	return id, version
}
