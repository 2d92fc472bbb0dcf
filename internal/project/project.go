// Package project reads an app's project descriptor (project.toml), the
// file pack honours and the bare lifecycle ignores: which files the build
// sees (include/exclude), build env vars, the buildpack group with its pre
// and post additions, and the builder. It has pack v0.40's semantics: the
// schema is chosen as pack's ReadProjectDescriptor chooses it, the file
// is decoded by pack's own per-schema parsers (so every key pack reads is
// read the same way), pack's validation is applied, and the keys pack
// would warn about are listed. Errors are usage errors naming the file
// (and the line, for TOML errors).
//
// filter.go holds the include/exclude matching and the filtered copy.
package project

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/pack/pkg/project/types"
	v01 "github.com/buildpacks/pack/pkg/project/v01"
	v02 "github.com/buildpacks/pack/pkg/project/v02"
	v03 "github.com/buildpacks/pack/pkg/project/v03"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/safefs"
)

// Script is an inline buildpack's script (pack writes it into a
// generated buildpack).
type Script struct {
	API    string `toml:"api"`
	Inline string `toml:"inline"`
	Shell  string `toml:"shell"`
}

// Buildpack is one entry of the group, or of its pre or post addition.
// As in pack, a URI (relative ones are relative to Descriptor.Dir) wins
// over an inline script; an inline script without a URI has an ID and
// Script.API (Load checks); otherwise ID, with or without Version, names
// a buildpack the builder should have. The toml tags let callers decode
// a builder's order.toml into it.
type Buildpack struct {
	ID      string   `toml:"id"`
	Version string   `toml:"version"`
	URI     string   `toml:"uri"`
	Script  Script   `toml:"script"`
	ExecEnv []string `toml:"exec-env"` // schema 0.3; nil: every exec-env
}

// EnvVar is one build env entry.
type EnvVar struct {
	Name, Value string
	ExecEnv     []string // schema 0.3; nil: every exec-env
}

// Descriptor is what cipack applies from project.toml.
type Descriptor struct {
	Path string // the file read
	// Dir is Path's directory: the base of relative buildpack URIs, as
	// pack's ProjectDescriptorBaseDir.
	Dir           string
	SchemaVersion string // "0.1", "0.2" or "0.3"
	// Include and Exclude are gitignore patterns (at most one is set).
	Include, Exclude []string
	Env              []EnvVar // in file order; a later one of a name wins
	Group, Pre, Post []Buildpack
	Builder          string
	// Unsupported lists the keys pack would not apply (and warn about),
	// for a warning each: a table is listed, not every key in it.
	Unsupported []string
	// SkippedLinks lists the hard-linked files Copy left out.
	SkippedLinks []string
}

// parsers are pack's own, as its ReadProjectDescriptor picks them. That
// function itself is not called: it reads the file with os.ReadFile,
// unbounded and following any link (the app may come from anyone, see
// read), and prints its warnings through pack's logger, where cipack
// returns them (Unsupported).
var parsers = map[string]func(string) (types.Descriptor, toml.MetaData, error){
	"0.1": v01.NewDescriptor,
	"0.2": v02.NewDescriptor,
	"0.3": v03.NewDescriptor,
}

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
	return parse(path, string(b))
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

// parse decodes body, the contents of path, as pack does.
func parse(path, body string) (*Descriptor, error) {
	// As pack: [_] schema-version picks the parser, 0.1 when absent.
	var version struct {
		Project struct {
			Version string `toml:"schema-version"`
		} `toml:"_"`
	}
	if _, err := toml.Decode(body, &version); err != nil {
		return nil, tomlError(path, err)
	}
	schema := version.Project.Version
	if schema == "" {
		schema = "0.1"
	}
	newDescriptor, ok := parsers[schema]
	if !ok {
		return nil, exit.Usagef(path, `set [_] schema-version to "0.3", "0.2" or "0.1"`,
			"unknown project descriptor schema version %q (known: 0.1, 0.2, 0.3)", schema)
	}
	pd, md, err := newDescriptor(body)
	if err != nil {
		return nil, tomlError(path, err)
	}
	t := tablesOf(schema, md)
	if bad := validate(pd, t); bad != nil {
		return nil, exit.Usagef(path, bad.hint, "%s", bad.msg)
	}
	d := &Descriptor{
		Path:          path,
		Dir:           filepath.Dir(path),
		SchemaVersion: schema,
		Include:       pd.Build.Include,
		Exclude:       pd.Build.Exclude,
		Group:         buildpacks(pd.Build.Buildpacks),
		Pre:           buildpacks(pd.Build.Pre.Buildpacks),
		Post:          buildpacks(pd.Build.Post.Buildpacks),
		Builder:       pd.Build.Builder,
		Unsupported:   unsupported(schema, md),
	}
	for _, e := range pd.Build.Env {
		d.Env = append(d.Env, EnvVar{Name: e.Name, Value: e.Value, ExecEnv: nonEmpty(e.ExecEnv)})
	}
	return d, nil
}

// tomlError is a usage error naming the file, and the line when the
// parser knows it.
func tomlError(path string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return exit.Usagef(fmt.Sprintf("%s:%d", path, pe.Position.Line), "fix the TOML", "%s", pe.Message)
	}
	// A value of the wrong type (include = "x") is no ParseError: the
	// decoder puts the line in the message only.
	if m := typeError.FindStringSubmatch(err.Error()); m != nil {
		return exit.Usagef(path+":"+m[1], "fix the file (see buildpacks.io project descriptor)", "%s: %s", m[2], m[3])
	}
	return exit.Usagef(path, "fix the file (see buildpacks.io project descriptor)", "%v", err)
}

// typeError is BurntSushi/toml's message for a value the descriptor
// cannot hold: line, key, what is wrong.
var typeError = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

func buildpacks(in []types.Buildpack) []Buildpack {
	var out []Buildpack
	for _, b := range in {
		out = append(out, Buildpack{ID: b.ID, Version: b.Version, URI: b.URI,
			Script: Script(b.Script), ExecEnv: nonEmpty(b.ExecEnv)})
	}
	return out
}

// nonEmpty makes pack's "no exec-env" (nil, or [] from schema 0.2) nil.
func nonEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

// tables names, for messages, the tables of a schema the way the file
// spelled them.
type tables struct{ group, pre, post, env string }

func tablesOf(schema string, md toml.MetaData) tables {
	if schema == "0.1" {
		return tables{"[[build.buildpacks]]", "[[build.pre.group]]", "[[build.post.group]]", "[[build.env]]"}
	}
	t := tables{"[[io.buildpacks.group]]", "[[io.buildpacks.pre.group]]", "[[io.buildpacks.post.group]]", "[[io.buildpacks.build.env]]"}
	// Schema 0.2's deprecated spelling, which its parser still reads.
	if schema == "0.2" && !md.IsDefined("io", "buildpacks", "build", "env") && md.IsDefined("io", "buildpacks", "env", "build") {
		t.env = "[[io.buildpacks.env.build]]"
	}
	return t
}

// invalid is why a descriptor is refused, and what to do about it.
type invalid struct{ msg, hint string }

// validate applies pack's validate (pkg/project/project.go) to the group
// and, where pack checks only the group, to pre and post too, since
// cipack applies them as well; plus what pack refuses only later, when it
// builds (getBuildpackLocator: an inline buildpack needs an API version),
// and an env entry without a name, which pack would set as "".
func validate(p types.Descriptor, t tables) *invalid {
	// As pack: set, even to [], counts.
	if p.Build.Include != nil && p.Build.Exclude != nil {
		return &invalid{"both include and exclude are set", "keep include or exclude, not both (as pack requires)"}
	}
	for _, l := range p.Project.Licenses {
		if l.Type == "" && l.URI == "" {
			return &invalid{"a license has neither type nor uri", "give each license a type or a uri (as pack requires)"}
		}
	}
	for _, list := range []struct {
		table string
		bps   []types.Buildpack
	}{{t.group, p.Build.Buildpacks}, {t.pre, p.Build.Pre.Buildpacks}, {t.post, p.Build.Post.Buildpacks}} {
		for i, bp := range list.bps {
			if bad := validateBuildpack(fmt.Sprintf("%s entry %d", list.table, i+1), bp); bad != nil {
				return bad
			}
		}
	}
	for i, e := range p.Build.Env {
		if e.Name == "" {
			return &invalid{fmt.Sprintf("%s entry %d has no name", t.env, i+1), "give each build env entry a name"}
		}
		// Checked here, not with --env's entries later: the name is this
		// file's, and so is the fix. Each name becomes a file in the
		// platform's env/ dir, so '/', '=' and the like are never names.
		if !envName.MatchString(e.Name) {
			return &invalid{fmt.Sprintf("%s entry %d: name %q is not an environment variable name", t.env, i+1, e.Name),
				"names are letters, digits and '_', not starting with a digit"}
		}
	}
	return nil
}

// envName is the rule cipack applies to every build env name (--env too).
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func validateBuildpack(entry string, bp types.Buildpack) *invalid {
	inline := bp.Script.Inline != "" && bp.URI == "" // pack ignores the script when there is a uri
	switch {
	case inline && bp.ID == "":
		return &invalid{entry + " has an inline script but no id", "give the inline buildpack an id"}
	case bp.ID == "" && bp.URI == "":
		return &invalid{entry + " has neither id nor uri", "give each buildpack an id or a uri (as pack requires)"}
	case bp.URI != "" && bp.Version != "":
		return &invalid{entry + " has both uri and version", "drop version: the uri names the buildpack (as pack requires)"}
	case inline && bp.Script.API == "":
		return &invalid{entry + " (" + bp.ID + ") has an inline script but no script.api (pack: Missing API version for inline buildpack)",
			`set the Buildpack API the script is written for, e.g. script.api = "0.10"`}
	}
	return nil
}

// unsupported lists the undecoded keys pack would warn about, each table
// once (not each key in it, which pack lists too), sorted.
func unsupported(schema string, md toml.MetaData) []string {
	var keys []toml.Key
	for _, k := range md.Undecoded() {
		if unsupportedKey(k.String(), schema) {
			keys = append(keys, k)
		}
	}
	keys = append(keys, ignoredByPack(schema, md)...)
	listed := map[string]bool{}
	for _, k := range keys {
		listed[k.String()] = true
	}
	var out []string
	for _, k := range keys {
		if !insideListed(k, listed) {
			out = append(out, k.String())
		}
	}
	sort.Strings(out)
	return slices.Compact(out) // array tables repeat their keys
}

// insideListed reports whether k is inside a table listed already.
func insideListed(k toml.Key, listed map[string]bool) bool {
	for i := 1; i < len(k); i++ {
		if listed[k[:i].String()] {
			return true
		}
	}
	return false
}

// unsupportedKey is pack's unsupportedKey (pkg/project/project.go,
// unexported, so copied): keys of the tables the schema owns are reported,
// those of [metadata], [_.metadata] and the user's own tables are not.
// One difference: pack has no case for 0.3 and so warns about every
// undecoded key there, the user's own tables included, although 0.3 lays
// out its tables as 0.2 does; cipack applies 0.2's rule to 0.3.
func unsupportedKey(key, schema string) bool {
	switch schema {
	case "0.1":
		return strings.HasPrefix(key, "project.") || strings.HasPrefix(key, "build.") || strings.Contains(key, "io.buildpacks")
	case "0.2", "0.3":
		return strings.Contains(key, "io.buildpacks") || (strings.HasPrefix(key, "_.") && !strings.HasPrefix(key, "_.metadata"))
	}
	return true
}

// ignoredByPack lists keys pack's parsers decode and then drop without a
// word, so pack would not warn about them either: schema 0.3 reads
// [io.buildpacks.build] into pack's whole Build table but keeps only its
// env, and schema 0.2 reads the deprecated [[io.buildpacks.env.build]]
// only when [[io.buildpacks.build.env]] is absent. A user who wrote
// exclude under [io.buildpacks.build], meaning [io.buildpacks], is told
// the key does nothing rather than having the files they meant to leave
// out reach the build.
func ignoredByPack(schema string, md toml.MetaData) []toml.Key {
	var out []toml.Key
	switch schema {
	case "0.2":
		if md.IsDefined("io", "buildpacks", "build", "env") && md.IsDefined("io", "buildpacks", "env", "build") {
			out = append(out, toml.Key{"io", "buildpacks", "env", "build"})
		}
	case "0.3":
		for _, k := range []string{"include", "exclude", "buildpacks", "builder", "pre", "post"} {
			if md.IsDefined("io", "buildpacks", "build", k) {
				out = append(out, toml.Key{"io", "buildpacks", "build", k})
			}
		}
	}
	return out
}

// BuildEnv is the KEY=VALUE list of the env entries that apply in
// execEnv, in file order. The rule is the lifecycle's for buildpacks
// (phase/detector.go): an entry applies when it lists no exec-env, or
// lists execEnv or "*"; with no execEnv (""), every entry applies.
func (d *Descriptor) BuildEnv(execEnv string) []string {
	if d == nil {
		return nil
	}
	var env []string
	for _, e := range d.Env {
		if appliesIn(e.ExecEnv, execEnv) {
			env = append(env, e.Name+"="+e.Value)
		}
	}
	return env
}

// AppliesIn reports whether a group entry runs in execEnv (BuildEnv's
// rule).
func (b Buildpack) AppliesIn(execEnv string) bool { return appliesIn(b.ExecEnv, execEnv) }

func appliesIn(list []string, execEnv string) bool {
	return execEnv == "" || len(list) == 0 || slices.Contains(list, "*") || slices.Contains(list, execEnv)
}
