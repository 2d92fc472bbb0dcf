package cli

import (
	"slices"
	"testing"

	"github.com/cipack/cipack/internal/rebase"
)

// With the fleet (--config), a promote's credentials are scoped to the
// fleet's images, tags and run images: a plan naming another registry
// gets none of them (and Promote refuses it).
func TestPromoteCredentialScopeIsTheFleets(t *testing.T) {
	plan := rebase.Report{Images: []rebase.Outcome{{Image: "evil.example/x:latest", Tags: []string{"evil.example/x:stable"}}}}
	fleet := []rebase.Target{{Image: "r.example/team/app:latest", Tags: []string{"r.example/team/app:stable"}, RunImage: "r.example/base/run:jammy"}}
	got := promoteScope(plan, fleet)
	if slices.ContainsFunc(got, func(s string) bool { return s == "evil.example/x:latest" || s == "evil.example/x:stable" }) ||
		!slices.Contains(got, "r.example/team/app:stable") || !slices.Contains(got, "r.example/base/run:jammy") {
		t.Fatalf("scope with a fleet: %q", got)
	}
	if got := promoteScope(plan, nil); !slices.Equal(got, []string{"evil.example/x:latest", "evil.example/x:stable"}) {
		t.Fatalf("scope without a fleet: %q", got)
	}
}
