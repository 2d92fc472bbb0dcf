package rebase

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestShardsAreDisjointStableAndCoverTheFleet(t *testing.T) {
	var fleet []Target
	for i := 0; i < 10000; i++ {
		fleet = append(fleet, Target{Image: fmt.Sprintf("registry.example/team-%d/app-%d:latest", i%37, i)})
	}
	for _, n := range []int{1, 2, 4, 16, 256} {
		owner := map[string]int{}
		for k := 1; k <= n; k++ {
			part := Shard{K: k, N: n}.Select(fleet)
			// Balanced: within 25% of an even split (10,000 / N), for N
			// up to 16; 256 parts of ~39 images vary more.
			if even := len(fleet) / n; n <= 16 && (len(part) < even*3/4 || len(part) > even*5/4) {
				t.Errorf("shard %d/%d holds %d images, an even split is %d", k, n, len(part), even)
			}
			for _, img := range part {
				if prev, dup := owner[img.Image]; dup {
					t.Fatalf("%s is in shards %d and %d of %d", img.Image, prev, k, n)
				}
				owner[img.Image] = k
			}
		}
		if len(owner) != len(fleet) {
			t.Fatalf("%d shards cover %d of %d images", n, len(owner), len(fleet))
		}
		// Stable: an image's shard does not depend on the rest of the fleet.
		for _, img := range fleet[:50] {
			alone := 0
			for k := 1; k <= n; k++ {
				if len((Shard{K: k, N: n}).Select([]Target{img})) == 1 {
					alone = k
				}
			}
			if alone != owner[img.Image] {
				t.Fatalf("%s is in shard %d with the fleet and %d alone", img.Image, owner[img.Image], alone)
			}
		}
	}
}

func TestParseShard(t *testing.T) {
	for in, want := range map[string]string{"1/1": "1/1", "2/4": "2/4", " 3/3 ": "3/3", "256/256": "256/256"} {
		if s, err := ParseShard(in); err != nil || s.String() != want {
			t.Errorf("%q: %v %v", in, s, err)
		}
	}
	for _, in := range []string{"", "0/4", "5/4", "1/0", "1/257", "a/b", "1", "1/2/3", "-1/2", "+1/+2", "1 /2"} {
		if _, err := ParseShard(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

func report(shard string, dryRun bool, d time.Duration, outcomes ...Outcome) Report {
	r := NewReport(outcomes, dryRun, d)
	r.Shard = shard
	return r
}

func TestMergeSumsTheShards(t *testing.T) {
	digest := "sha256:" + strings.Repeat("b", 64)
	var first, second []Outcome
	for _, o := range []Outcome{{Image: "r/b:1", Verdict: Rebase, NewDigest: digest}, {Image: "r/d:1", Verdict: UpToDate},
		{Image: "r/a:1", Verdict: Failed, Error: "boom"}, {Image: "r/c:1", Verdict: Rebuild}} {
		if (Shard{K: 1, N: 2}).Has(o.Image) {
			first = append(first, o)
		} else {
			second = append(second, o)
		}
	}
	a := report("1/2", false, 3*time.Second, first...)
	b := report("2/2", false, 5*time.Second, second...)
	other := func(k int) string { // an image of shard k of 2
		for i := 0; ; i++ {
			if img := fmt.Sprintf("r/x%d:1", i); (Shard{K: k, N: 2}).Has(img) {
				return img
			}
		}
	}
	m, err := Merge([]Report{a, b})
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, o := range m.Images {
		order = append(order, o.Image)
	}
	if strings.Join(order, " ") != "r/a:1 r/b:1 r/c:1 r/d:1" || m.Duration != 5*time.Second || m.Failed() != 1 ||
		m.Counts["rebase"] != 1 || m.Counts["rebuild"] != 1 || m.Counts["up-to-date"] != 1 || m.Shard != "" {
		t.Fatalf("merged %+v", m)
	}
	for name, reports := range map[string][]Report{
		"a shard missing":           {a},
		"a shard twice":             {a, a},
		"an image twice":            {a, report("2/2", false, 0, Outcome{Image: first[0].Image, Verdict: UpToDate})},
		"an image of another shard": {a, report("2/2", false, 0, Outcome{Image: other(1), Verdict: UpToDate})},
		"a verdict no sweep gives":  {a, report("2/2", false, 0, Outcome{Image: other(2), Verdict: "moved-json"})},
		"an error without its text": {a, report("2/2", false, 0, Outcome{Image: other(2), Verdict: Failed})},
		"a digest that is not one":  {a, report("2/2", false, 0, Outcome{Image: other(2), Verdict: Rebase, NewDigest: "sha256:b"})},
		"a shard that is not K/N":   {a, report("x", false, 0)},
		"dry run and not":           {a, report("2/2", true, 0)},
		"splits of another N":       {a, report("2/3", false, 0)},
		"no report":                 nil,
		"sharded and unsharded":     {a, report("", false, 0)},
	} {
		if _, err := Merge(reports); err == nil {
			t.Errorf("%s: merged", name)
		}
	}
}
