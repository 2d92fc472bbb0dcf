package buildpacks

import (
	"reflect"
	"testing"

	"github.com/buildpacks/lifecycle/buildpack"
)

func el(id string) buildpack.GroupElement { return buildpack.GroupElement{ID: id, Version: "1"} }
func bp(id string) Entry                  { return Entry{Ref: el(id)} }

var whole = Entry{WholeBuilder: true}

func groups(gs ...[]string) buildpack.Order {
	var o buildpack.Order
	for _, g := range gs {
		var grp buildpack.Group
		for _, id := range g {
			grp.Group = append(grp.Group, el(id))
		}
		o = append(o, grp)
	}
	return o
}

func TestOrderFollowsPack(t *testing.T) {
	builder := groups([]string{"b1"}, []string{"b2", "b3"})
	for _, tc := range []struct {
		name            string
		group, pre, pst []Entry
		want            buildpack.Order
		wantErr         bool
	}{
		{name: "nothing asked keeps the builder's order", want: nil},
		{name: "a group replaces the order", group: []Entry{bp("a"), bp("b")}, want: groups([]string{"a", "b"})},
		{name: "urn:cnb:builder alone is the builder's order", group: []Entry{whole}, want: builder},
		{name: "before and after urn:cnb:builder", group: []Entry{bp("a"), whole, bp("z")},
			want: groups([]string{"a", "b1", "z"}, []string{"a", "b2", "b3", "z"})},
		{name: "urn:cnb:builder twice", group: []Entry{whole, whole}, wantErr: true},
		{name: "pre and post wrap each group", pre: []Entry{bp("p1"), bp("p2")}, pst: []Entry{bp("q")},
			want: groups([]string{"p1", "p2", "b1", "q"}, []string{"p1", "p2", "b2", "b3", "q"})},
		{name: "a group wins over pre and post", group: []Entry{bp("a")}, pre: []Entry{bp("p")}, want: groups([]string{"a"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Order(tc.group, tc.pre, tc.pst, builder)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("order:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
	if got, _ := Order(nil, []Entry{bp("p")}, nil, nil); got != nil {
		t.Fatalf("pre with a builder without order gave %+v", got)
	}
}
