package build

import (
	"errors"
	"testing"

	"github.com/buildpacks/lifecycle/buildpack"
)

func ge(id string, optional bool) buildpack.GroupElement {
	return buildpack.GroupElement{ID: id, Version: "1", Optional: optional}
}

func recorded(ids ...string) []buildpack.GroupElement {
	out := make([]buildpack.GroupElement, len(ids))
	for i, id := range ids {
		out[i] = buildpack.GroupElement{ID: id, Version: "1"}
	}
	return out
}

// A recorded buildpack list must be an outcome of the order: a required
// buildpack taken out (a hostile one dropping itself), one added, or the
// order changed is refused; optional ones and meta-buildpacks' groups
// are followed; an order cipack cannot resolve is not guessed at.
func TestOutcomesOfTheOrder(t *testing.T) {
	meta := buildpack.Order{{Group: []buildpack.GroupElement{ge("x", false), ge("y", true)}}, {Group: []buildpack.GroupElement{ge("z", false)}}}
	inner := func(id, _ string) (buildpack.Order, error) {
		switch id {
		case "m":
			return meta, nil
		case "loop":
			return buildpack.Order{{Group: []buildpack.GroupElement{ge("loop", false)}}}, nil
		}
		return nil, nil
	}
	order := buildpack.Order{
		{Group: []buildpack.GroupElement{ge("a", false), ge("m", false), ge("c", true)}},
		{Group: []buildpack.GroupElement{ge("b", false), {ID: "noversion"}}},
	}
	for _, c := range []struct {
		rec  []string
		want bool
	}{
		{[]string{"a", "x", "y", "c"}, true},
		{[]string{"a", "x"}, true},
		{[]string{"a", "z", "c"}, true},
		{[]string{"b", "noversion"}, true},
		{[]string{"a", "c"}, false},                // the meta-buildpack's group taken out
		{[]string{"x", "y", "c"}, false},           // a required buildpack taken out
		{[]string{}, false},                        // all of them
		{[]string{"a", "x", "y", "c", "b"}, false}, // one added
		{[]string{"x", "a"}, false},                // out of order
		{[]string{"a", "x", "z"}, false},           // two groups of the meta-buildpack
	} {
		o := outcomes{rec: recorded(c.rec...), inner: inner, versions: map[string][]string{"noversion": {"1"}}}
		if got, err := o.fits(order); err != nil || got != c.want {
			t.Errorf("%v: fits %v, %v; want %v", c.rec, got, err, c.want)
		}
	}
	// Composites nested seven deep, ten groups each: refused work, not
	// ten million matches.
	wide := func(id, _ string) (buildpack.Order, error) {
		if len(id) > 7 {
			return nil, nil
		}
		var o buildpack.Order
		for range 10 {
			o = append(o, buildpack.Group{Group: []buildpack.GroupElement{ge(id+"m", false)}})
		}
		return o, nil
	}
	deep := outcomes{rec: recorded("x"), inner: wide}
	if _, err := deep.fits(buildpack.Order{{Group: []buildpack.GroupElement{ge("m", false)}}}); !errors.Is(err, errUnresolved) {
		t.Errorf("a wide nested order: %v, want errUnresolved", err)
	}
	for what, order := range map[string]buildpack.Order{
		"a version cipack cannot pick": {{Group: []buildpack.GroupElement{{ID: "two"}}}},
		"a cycle":                      {{Group: []buildpack.GroupElement{ge("loop", false)}}},
	} {
		o := outcomes{rec: recorded("two"), inner: inner, versions: map[string][]string{"two": {"1", "2"}}}
		if _, err := o.fits(order); !errors.Is(err, errUnresolved) {
			t.Errorf("%s: %v, want errUnresolved (the check is skipped)", what, err)
		}
	}
}
