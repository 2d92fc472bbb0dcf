package rebase

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// Shard is one of N parts of a fleet, K counted from 1 as Playwright's
// and Jest's --shard count them, so a CI matrix over 1..N sweeps it all.
type Shard struct{ K, N int }

// maxShards bounds N: a CI matrix has at most 256 jobs (GitHub's limit).
const maxShards = 256

// ParseShard reads "K/N".
func ParseShard(s string) (Shard, error) {
	k, n, ok := strings.Cut(strings.TrimSpace(s), "/")
	ki, err1 := strconv.Atoi(k)
	ni, err2 := strconv.Atoi(n)
	switch {
	case !ok || err1 != nil || err2 != nil || !digits(k) || !digits(n):
		return Shard{}, fmt.Errorf("%q is not K/N", s)
	case ni < 1 || ni > maxShards:
		return Shard{}, fmt.Errorf("the shard count %d is out of range 1..%d", ni, maxShards)
	case ki < 1 || ki > ni:
		return Shard{}, fmt.Errorf("the shard %d is out of range 1..%d", ki, ni)
	}
	return Shard{K: ki, N: ni}, nil
}

// digits: Atoi also takes a sign ("+1/+2"), which no matrix writes.
func digits(s string) bool {
	return s != "" && strings.Trim(s, "0123456789") == ""
}

func (s Shard) String() string {
	if s.N == 0 {
		return ""
	}
	return fmt.Sprintf("%d/%d", s.K, s.N)
}

// Has reports whether image is in the shard. The part is a hash of the
// image reference alone: an image stays in its shard whatever else the
// fleet gains or loses, the N parts are disjoint and cover the fleet,
// and a fleet of many images splits evenly.
func (s Shard) Has(image string) bool {
	if s.N <= 1 {
		return true
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(image))
	return int(h.Sum64()%uint64(s.N)) == s.K-1
}

// Select keeps the targets in the shard, in their order. Only their run
// images and builders are then read: the sweep looks them up lazily.
func (s Shard) Select(targets []Target) []Target {
	var out []Target
	for _, t := range targets {
		if s.Has(t.Image) {
			out = append(out, t)
		}
	}
	return out
}

// Merge sums the reports of a sharded sweep into one: the images of all,
// sorted as one sweep's would be, the counts summed, the duration the
// longest shard's (they ran side by side). Reports must agree on
// --dry-run, name no image twice, and, when sharded, be the N shards of
// one split, each once.
func Merge(reports []Report) (Report, error) {
	if len(reports) == 0 {
		return Report{}, errors.New("no report to merge")
	}
	var all []Outcome
	seen := map[string]int{}
	var longest = reports[0].Duration
	shards := map[int]bool{}
	n := reports[0].ShardOf().N
	for i, r := range reports {
		if r.DryRun != reports[0].DryRun {
			return Report{}, fmt.Errorf("report %d is a dry run and report 1 is not, or the other way round", i+1)
		}
		s := r.ShardOf()
		if r.Shard != "" && s.N == 0 {
			return Report{}, fmt.Errorf("report %d names shard %q, which is not K/N", i+1, r.Shard)
		}
		if s.N != n {
			return Report{}, fmt.Errorf("report %d is shard %q, report 1 is of %d shards", i+1, r.Shard, n)
		} else if n > 0 {
			if shards[s.K] {
				return Report{}, fmt.Errorf("shard %s is given twice", s)
			}
			shards[s.K] = true
		}
		for _, o := range r.Images {
			if err := checkMerged(o, s); err != nil {
				return Report{}, fmt.Errorf("report %d: %w", i+1, err)
			}
			key := CanonicalImage(o.Image)
			if j, dup := seen[key]; dup {
				return Report{}, fmt.Errorf("%s is in report %d and report %d", o.Image, j, i+1)
			}
			seen[key] = i + 1
			all = append(all, o)
		}
		longest = max(longest, r.Duration)
	}
	for k := 1; k <= n; k++ {
		if !shards[k] {
			return Report{}, fmt.Errorf("the report of shard %d/%d is missing", k, n)
		}
	}
	sortOutcomes(all)
	return NewReport(all, reports[0].DryRun, longest), nil
}

// sortOutcomes orders outcomes by image: the report's stable key.
func sortOutcomes(o []Outcome) {
	slices.SortStableFunc(o, func(a, b Outcome) int { return strings.Compare(a.Image, b.Image) })
}

// ShardOf is the report's shard (zero when the sweep was not sharded or
// the field does not parse).
func (r Report) ShardOf() Shard {
	s, err := ParseShard(r.Shard)
	if err != nil {
		return Shard{}
	}
	return s
}

// checkMerged refuses an outcome no sweep writes: a report file is input.
// Its verdict is one of the five (an error is failed), its image a tag in
// its shard, its digests digests.
func checkMerged(o Outcome, s Shard) error {
	if !slices.Contains([]Verdict{UpToDate, Rebase, Rebuild, Skipped, Failed}, o.Verdict) {
		return fmt.Errorf("%s: verdict %q is not one a sweep gives", o.Image, o.Verdict)
	}
	if o.Verdict == Failed && o.Error == "" {
		return fmt.Errorf("%s: an error verdict without its error", o.Image)
	}
	if _, err := name.NewTag(o.Image); err != nil {
		return fmt.Errorf("%q is not an image tag", o.Image)
	}
	if s.N > 0 && !s.Has(o.Image) {
		return fmt.Errorf("%s is not in shard %s", o.Image, s)
	}
	for _, d := range []string{o.OldDigest, o.NewDigest} {
		if _, err := v1.NewHash(d); d != "" && err != nil {
			return fmt.Errorf("%s: %q is not a digest", o.Image, d)
		}
	}
	return nil
}

// CanonicalImage is a tag's full name with its registry host in lower
// case, so that one image spelled two ways (app and app:latest, a Docker
// Hub name with or without index.docker.io/library/, REG.example and
// reg.example: host names are case-insensitive) is one image. It is the
// one comparison of tag names: the fleet's duplicate check, merged
// reports, ad-hoc images and promote's fleet check all use it. A
// reference that does not parse as a tag is returned as it is.
func CanonicalImage(ref string) string {
	t, err := name.NewTag(ref, name.WeakValidation)
	if err != nil {
		return ref
	}
	return strings.ToLower(t.RegistryStr()) + "/" + t.RepositoryStr() + ":" + t.TagStr()
}
