package rebase

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/cipack/cipack/internal/registry"
)

// promoted is a promoteWorld whose genuine plan is promoted: latest and
// stable on the candidate, whose record names the digest before.
func promoted(t *testing.T) *promoteWorld {
	t.Helper()
	w := newPromoteWorld(t)
	if out, _ := Promote(context.Background(), w.reg, Report{Images: []Outcome{w.plan}}, nil); len(out) != 1 || !out[0].Applied {
		t.Fatalf("promote: %+v", out)
	}
	return w
}

// genuineLast lists the referrers with one record last, as a registry
// may order them (by digest, or by push time with the junk pushed later).
type genuineLast struct {
	Registry
	last string
}

func (g *genuineLast) Referrers(ctx context.Context, d name.Digest, artifactType string) (*v1.IndexManifest, error) {
	idx, err := g.Registry.Referrers(ctx, d, artifactType)
	if err != nil {
		return nil, err
	}
	out := *idx
	out.Manifests = slices.Clone(idx.Manifests)
	slices.SortStableFunc(out.Manifests, func(a, b v1.Descriptor) int {
		return boolInt(a.Annotations[annotationPrevious] == g.last) - boolInt(b.Annotations[annotationPrevious] == g.last)
	})
	return &out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// 200 junk records next to the genuine one (100 dated now, naming digests
// that are no build of the app, and 100 dated 2099), the genuine one
// listed last: it is still read, and the rollback goes back to it.
func TestRollbackFindsTheGenuineRecordUnder200JunkRecords(t *testing.T) {
	w := promoted(t)
	ctx := context.Background()
	latest, _ := name.ParseReference(w.latest, name.Insecure)
	repo := latest.Context()
	subject, err := w.reg.Get(ctx, repo.Digest(w.plan.NewDigest))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i := 0; i < 200; i++ {
		at := now.Add(time.Second)
		if i%2 == 1 {
			at = time.Date(2099, 1, 1, 0, 0, 0, i, time.UTC)
		}
		junk := fmt.Sprintf("sha256:%064x", i+1)
		if err := recordPrevious(ctx, w.reg, repo, subject.Descriptor, junk, []string{w.latest}, at); err != nil {
			t.Fatal(err)
		}
	}
	reg := &genuineLast{Registry: w.reg, last: w.current}
	out := Rollback(ctx, reg, []Target{{Image: w.latest, Tags: []string{w.stable}}})
	if len(out) != 1 || !out[0].Applied || out[0].NewDigest != w.current {
		t.Fatalf("rollback under 200 junk records: %+v, want back to %s", out, w.current)
	}
}

// The fleet's tags move with the image's, whatever the record names: a
// tag the fleet added since (prod) goes back too, and the set stays one.
// A fleet tag not on the digest being rolled back is refused, naming it,
// and nothing moves.
func TestRollbackMovesTheFleetsTagsToo(t *testing.T) {
	w := promoted(t)
	ctx := context.Background()
	prod := strings.Replace(w.stable, ":stable", ":prod", 1)
	w.tagCandidate(t, prod)
	lagging := strings.Replace(w.stable, ":stable", ":lagging", 1)
	out := Rollback(ctx, w.reg, []Target{{Image: w.latest, Tags: []string{w.stable, prod, lagging}}})
	if len(out) != 1 || out[0].Applied || !strings.Contains(out[0].Error, lagging) {
		t.Fatalf("a fleet tag off the set: %+v, want refused naming %s", out, lagging)
	}
	for _, ref := range []string{w.latest, w.stable, prod} {
		if got := w.head(t, ref); got != w.plan.NewDigest {
			t.Fatalf("a refused rollback moved %s", ref)
		}
	}
	out = Rollback(ctx, w.reg, []Target{{Image: w.latest, Tags: []string{w.stable, prod}}})
	if len(out) != 1 || !out[0].Applied {
		t.Fatalf("rollback with the fleet's tags: %+v", out)
	}
	for _, ref := range []string{w.latest, w.stable, prod} {
		if got := w.head(t, ref); got != w.current {
			t.Fatalf("%s is at %s after the rollback, want %s", ref, got, w.current)
		}
	}
}

// noDate is a registry that sends no Date (nor Last-Modified).
type noDate struct{ Registry }

func (noDate) ManifestTimes(context.Context, name.Digest) (registry.ManifestTimes, error) {
	return registry.ManifestTimes{}, nil
}

// A registry that says nothing about time still bounds a record's: by
// the local clock and the skew. A record dated 2099 is passed over.
func TestRecordFromTheFutureIsPassedOverWithoutADateHeader(t *testing.T) {
	reg, repo, digests, desc := threeImages(t)
	ctx := context.Background()
	if err := recordPrevious(ctx, reg, repo, desc.Descriptor, digests[0], nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := recordPrevious(ctx, reg, repo, desc.Descriptor, digests[1], nil, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	r, err := Records(ctx, noDate{reg}, repo, digests[2])
	if err != nil || len(r) != 1 || r[0].Digest != digests[0] {
		t.Fatalf("records %+v (%v), want only the one written now", r, err)
	}
}
