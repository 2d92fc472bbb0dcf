package buildpacks

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/buildpacks/lifecycle/buildpack"
	"github.com/buildpacks/lifecycle/platform/files"
)

// Builder is what the plan needs to know of the builder.
type Builder struct {
	// Order is the builder's order.toml.
	Order buildpack.Order
	// Versions lists, per id, the versions of the buildpacks the builder
	// holds.
	Versions map[string][]string
	// APIs are the Buildpack APIs its lifecycle declares (empty: the
	// pinned lifecycle's list stands in).
	APIs []string
}

// Has reports whether the builder holds id (at version, when given).
func (b Builder) Has(id, version string) bool {
	vs, ok := b.Versions[id]
	return ok && (version == "" || slices.Contains(vs, version))
}

// versionOf picks the version of the builder's id: the one its order
// names, else its only one.
func (b Builder) versionOf(id string) (string, bool) {
	for _, g := range b.Order {
		for _, e := range g.Group {
			if e.ID == id && e.Version != "" {
				return e.Version, true
			}
		}
	}
	if vs := b.Versions[id]; len(vs) == 1 {
		return vs[0], true
	}
	return "", false
}

// Request is what the user asked for: buildpacks for the group, or to
// put before and after every group of the builder's order.
type Request struct {
	Group, Pre, Post []Source
	Builder          Builder
	// Target is the run image's OS and architecture.
	Target files.TargetMetadata
	// ExecEnv drops the entries that do not run in it.
	ExecEnv string
	// Work is an empty directory for the fetched buildpacks; they end up
	// at Work/<escaped id>/<version>, the lifecycle's layout.
	Work string
}

// Plan is what the lifecycle gets: an order (nil: the builder's own) and
// the buildpacks to add to the builder's.
type Plan struct {
	Order buildpack.Order
	Extra []Module
}

// Empty reports whether the request changes nothing.
func (r Request) Empty() bool { return len(r.Group)+len(r.Pre)+len(r.Post) == 0 }

// Resolve fetches what the request names, checks every buildpack the
// lifecycle will run from outside the builder, and plans the order.
func Resolve(ctx context.Context, r Request, pull Fetcher) (*Plan, error) {
	f := &fetcher{ctx: ctx, work: r.Work, pull: pull}
	resolve := func(srcs []Source) ([]Entry, error) {
		var out []Entry
		for _, s := range srcs {
			if !appliesIn(s.ExecEnv, r.ExecEnv) {
				continue
			}
			e, err := f.entry(s, r.Builder)
			if err != nil {
				return nil, err
			}
			out = append(out, e)
		}
		return out, nil
	}
	group, err := resolve(r.Group)
	if err != nil {
		return nil, err
	}
	// As pack: with a group, pre and post are not used, nor fetched.
	var pre, post []Entry
	if len(group) == 0 {
		if pre, err = resolve(r.Pre); err != nil {
			return nil, err
		}
		if post, err = resolve(r.Post); err != nil {
			return nil, err
		}
	}
	order, err := Order(group, pre, post, r.Builder.Order)
	if err != nil {
		return nil, err
	}
	p := &Plan{Order: order, Extra: f.found}
	return p, p.check(r)
}

// entry locates and fetches one source.
func (f *fetcher) entry(s Source, b Builder) (Entry, error) {
	l, err := Locate(s, b.Has, exists)
	if err != nil {
		return Entry{}, err
	}
	switch l.Kind {
	case BuilderOrder:
		return Entry{WholeBuilder: true}, nil
	case FromBuilder:
		if err := ValidID(l.ID); err != nil {
			return Entry{}, l.errorf("give a buildpack id", "%v", err)
		}
		version := l.Version
		if version != "" {
			if err := ValidVersion(version); err != nil {
				return Entry{}, l.errorf("give a buildpack version", "%s: %v", l.ID, err)
			}
		}
		if !b.Has(l.ID, version) {
			return Entry{}, l.errorf("use a buildpack the builder has, or give its directory or image", "the builder has no buildpack %s%s", l.ID, at(version))
		}
		if version == "" {
			v, ok := b.versionOf(l.ID)
			if !ok {
				return Entry{}, l.errorf("name the version: ID@VERSION", "the builder has several versions of %s (%v)", l.ID, b.Versions[l.ID])
			}
			version = v
		}
		return Entry{Ref: buildpack.GroupElement{ID: l.ID, Version: version}}, nil
	}
	ref, err := f.fetch(l)
	return Entry{Ref: ref}, err
}

// check runs every fetched buildpack past the lifecycle's rules, and
// makes sure a composite's children are there.
func (p *Plan) check(r Request) error {
	have := func(id, version string) bool {
		for _, m := range p.Extra {
			if m.ID == id && (version == "" || m.Version == version) {
				return true
			}
		}
		return r.Builder.Has(id, version)
	}
	for _, m := range p.Extra {
		if err := checkModule(m, r.Builder.APIs, r.Target); err != nil {
			return moduleError(m, err)
		}
		// The image's metadata would say the builder's buildpack ran:
		// the app (anyone's) may not take its name. The user may, with
		// --buildpack (pack warns, and so does the build).
		if m.From.Root != "" && r.Builder.Has(m.ID, m.Version) {
			return moduleError(m, errors.New("the builder has a buildpack of this id and version: an app's own buildpack may not replace it"))
		}
		for _, g := range m.Desc.Order {
			for _, e := range g.Group {
				if !have(e.ID, e.Version) {
					return moduleError(m, fmt.Errorf("its order names %s%s, which neither it nor the builder brings", e.ID, at(e.Version)))
				}
			}
		}
	}
	return nil
}

// appliesIn is the lifecycle's exec-env rule (phase/detector.go): no
// list, "*", or the build's environment.
func appliesIn(list []string, env string) bool {
	return len(list) == 0 || slices.Contains(list, "*") || slices.Contains(list, env)
}

func at(version string) string {
	if version == "" {
		return ""
	}
	return "@" + version
}

// moduleError names the buildpack and what brought it.
func moduleError(m Module, err error) error {
	return m.From.errorf("use a buildpack this builder's lifecycle and run image support", "%s@%s: %v", m.ID, m.Version, err)
}
