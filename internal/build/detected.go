package build

import (
	"errors"
	"fmt"
	"slices"

	"github.com/BurntSushi/toml"
	"github.com/buildpacks/lifecycle/buildpack"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/safefs"
)

// The buildpacks io.buildpacks.build.metadata lists come from
// config/metadata.toml, which the lifecycle's builder writes into the
// layers dir at the end of the build and the exporter reads back: build
// code still running (a detached process in the builder's creator) can
// rewrite it, and take a buildpack out. Rebase then never calls the
// image's builder moved when that buildpack is patched or dropped: the
// buildpack exempts its image from rebuilds. cipack cannot see which
// group the detector chose, but it has the order the detector was given:
// the recorded list must be one of its possible outcomes (every required
// buildpack of one group, meta-buildpacks expanded, in order).

// errUnresolved: the order names a buildpack cipack cannot look into (no
// single version, no readable buildpack.toml): the outcome check is
// skipped, never guessed.
var errUnresolved = errors.New("the order cannot be resolved")

// maxOrderDepth bounds meta-buildpack nesting (a cycle ends here), and
// maxOrderSteps the elements matched in all: the order is the builder's,
// and one of nested composites with many groups each would otherwise
// take exponential time.
const (
	maxOrderDepth = 8
	maxOrderSteps = 100000
)

// orderOf looks up a buildpack's own order: nil for a component one.
type orderOf func(id, version string) (buildpack.Order, error)

// outcomes matches recorded buildpacks against an order.
type outcomes struct {
	rec   []buildpack.GroupElement
	inner orderOf
	// versions are the known versions by id, for elements naming none.
	versions map[string][]string
	// steps counts matched elements against maxOrderSteps.
	steps *int
}

// fits reports whether rec is what detection could pick from order.
func (o outcomes) fits(order buildpack.Order) (bool, error) {
	o.steps = new(int)
	o.inner = cached(o.inner)
	for _, g := range order {
		ends, err := o.group(g.Group, 0, false, 0)
		if err != nil {
			return false, err
		}
		if ends[len(o.rec)] {
			return true, nil
		}
	}
	return false, nil
}

// group returns the positions in rec a match of g starting at pos can
// end at.
func (o outcomes) group(g []buildpack.GroupElement, pos int, optional bool, depth int) (map[int]bool, error) {
	at := map[int]bool{pos: true}
	for _, e := range g {
		next := map[int]bool{}
		for p := range at {
			ends, err := o.element(e, p, optional, depth)
			if err != nil {
				return nil, err
			}
			for q := range ends {
				next[q] = true
			}
		}
		at = next
	}
	return at, nil
}

// element matches one order element: a component buildpack is rec[pos]
// or, when optional, nothing; a meta-buildpack one of its groups.
func (o outcomes) element(e buildpack.GroupElement, pos int, optional bool, depth int) (map[int]bool, error) {
	if *o.steps++; *o.steps > maxOrderSteps {
		return nil, errUnresolved
	}
	optional = optional || e.Optional
	ends := map[int]bool{}
	if optional {
		ends[pos] = true
	}
	version := e.Version
	if version == "" {
		if vs := o.versions[e.ID]; len(vs) == 1 {
			version = vs[0]
		} else {
			return nil, errUnresolved
		}
	}
	inner, err := o.inner(e.ID, version)
	if err != nil {
		return nil, err
	}
	if inner == nil {
		if pos < len(o.rec) && o.rec[pos].ID == e.ID && o.rec[pos].Version == version {
			ends[pos+1] = true
		}
		return ends, nil
	}
	if depth >= maxOrderDepth {
		return nil, errUnresolved
	}
	for _, g := range inner {
		sub, err := o.group(g.Group, pos, optional, depth+1)
		if err != nil {
			return nil, err
		}
		for q := range sub {
			ends[q] = true
		}
	}
	return ends, nil
}

// cached reads each buildpack's order once.
func cached(f orderOf) orderOf {
	type answer struct {
		order buildpack.Order
		err   error
	}
	seen := map[string]answer{}
	return func(id, version string) (buildpack.Order, error) {
		k := id + "@" + version
		a, ok := seen[k]
		if !ok {
			a.order, a.err = f(id, version)
			seen[k] = a
		}
		return a.order, a.err
	}
}

// detectionOrder is the order the detector was given: cipack's own when
// the user added buildpacks, else the builder's.
func detectionOrder(p *buildPlan, w *workdirs) (buildpack.Order, error) {
	if w.detectOrder != nil {
		return w.detectOrder, nil
	}
	b, err := builderBuildpacks(p)
	return b.Order, err
}

// innerOrders reads a buildpack's buildpack.toml (an added one's from its
// directory, else the builder's) for its own order.
func innerOrders(p *buildPlan, w *workdirs) orderOf {
	return func(id, version string) (buildpack.Order, error) {
		var raw []byte
		var err error
		if i := slices.Index(w.extraIDs, id+"@"+version); i >= 0 {
			raw, err = safefs.ReadFile(w.extra[i], "buildpack.toml", maxLaunchToml)
		} else {
			raw, err = p.files.ReadFile(p.builder.Path("buildpacks", escapeID(id), version, "buildpack.toml"))
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %s@%s: %w", errUnresolved, id, version, err)
		}
		var bp struct {
			Order buildpack.Order `toml:"order"`
		}
		if _, err := toml.Decode(string(raw), &bp); err != nil {
			return nil, fmt.Errorf("%w: %s@%s: %w", errUnresolved, id, version, err)
		}
		return bp.Order, nil
	}
}

// checkDetected refuses a recorded buildpack list no group of the order
// could have given. An order cipack cannot resolve skips the check.
func checkDetected(rec []buildpack.GroupElement, p *buildPlan, w *workdirs, known map[string][]string) error {
	order, err := detectionOrder(p, w)
	if err != nil || len(order) == 0 {
		return nil
	}
	ok, err := outcomes{rec: rec, inner: innerOrders(p, w), versions: known}.fits(order)
	if errors.Is(err, errUnresolved) {
		return nil
	}
	if err != nil {
		return err
	}
	if !ok {
		return forged(cnb.BuildMetadataLabel, fmt.Errorf("its buildpacks %s are no group the detector could choose from the order: a buildpack was taken out or added", groupString(rec)))
	}
	return nil
}

func groupString(rec []buildpack.GroupElement) string {
	s := make([]string, len(rec))
	for i, e := range rec {
		s[i] = e.ID + "@" + e.Version
	}
	return fmt.Sprintf("%v", s)
}
