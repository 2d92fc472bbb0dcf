package buildpacks

import (
	"errors"
	"slices"

	"github.com/buildpacks/lifecycle/buildpack"

	"github.com/cipack/cipack/internal/exit"
)

// Entry is one resolved element of a group: a buildpack, or the
// builder's whole order.
type Entry struct {
	Ref          buildpack.GroupElement
	WholeBuilder bool
}

// Order merges the user's group, pre and post buildpacks with the
// builder's order the way pack does (pkg/client/build.go
// getBuildpacks): a group replaces the builder's order, and the bare
// urn:cnb:builder in it stands for the builder's groups (what precedes it
// goes before each, what follows after each); without a group, pre and
// post wrap every group of the builder's order. Nothing asked: nil, the
// builder's own order.
//
// One difference: pack prepends each pre buildpack in turn, so several
// of them run in reverse; cipack keeps the order they were given in.
func Order(group, pre, post []Entry, builder buildpack.Order) (buildpack.Order, error) {
	if len(group) > 0 {
		return groupOrder(group, builder)
	}
	if len(pre)+len(post) == 0 || len(builder) == 0 {
		return nil, nil
	}
	var p, q []buildpack.GroupElement
	for _, e := range pre {
		p = append(p, e.Ref)
	}
	for _, e := range post {
		q = append(q, e.Ref)
	}
	out := make(buildpack.Order, 0, len(builder))
	for _, g := range builder {
		out = append(out, buildpack.Group{Group: slices.Concat(p, g.Group, q)})
	}
	return out, nil
}

func groupOrder(group []Entry, builder buildpack.Order) (buildpack.Order, error) {
	order := buildpack.Order{{}}
	merged := false
	for _, e := range group {
		if !e.WholeBuilder {
			for i := range order {
				order[i].Group = append(slices.Clone(order[i].Group), e.Ref)
			}
			continue
		}
		if merged {
			return nil, exit.Usagef("urn:cnb:builder", "name the builder's order once", "%v", errors.New("the builder's order is named twice"))
		}
		merged = true
		before := order[0].Group
		order = make(buildpack.Order, 0, len(builder))
		for _, g := range builder {
			order = append(order, buildpack.Group{Group: slices.Concat(before, g.Group)})
		}
	}
	return order, nil
}
