package rebase

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipack/cipack/internal/registry"
)

// PreviousArtifactType marks the record cipack leaves next to every
// digest it moves tags to: an OCI artifact in the same repository whose
// subject is that digest and whose annotations name the digest the tags
// held before. A later `cipack rollback` finds it through the referrers
// of the tag's current digest, with nothing kept by the CI. The image
// itself is not touched: its digest stays the lifecycle rebaser's.
const PreviousArtifactType = "application/vnd.cipack.previous.v1+json"

// Annotations of the record.
const (
	annotationPrevious = "io.cipack.previous.digest"
	annotationTags     = "io.cipack.tags"
	annotationCreated  = "org.opencontainers.image.created"
)

// recordPrevious pushes the record of a move: tags (the image's tag
// first) go from old to newDigest. It is written before any tag moves,
// so no tag ever points at a digest whose previous one is unknown.
func recordPrevious(ctx context.Context, reg Writer, repo name.Repository, subject v1.Descriptor, old string, tags []string, now time.Time) error {
	if old == "" || old == subject.Digest.String() {
		return nil
	}
	tagsJSON, err := json.Marshal(tags)
	if err != nil {
		return err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.MediaType(PreviousArtifactType))
	// Annotations first: go-containerregistry's mutate.Annotations drops
	// a subject set before it (v0.22.1).
	img = mutate.Annotations(img, map[string]string{
		annotationPrevious: old, annotationTags: string(tagsJSON), annotationCreated: now.UTC().Format(time.RFC3339Nano),
	}).(v1.Image)
	img = mutate.Subject(img, subject).(v1.Image)
	d, err := img.Digest()
	if err != nil {
		return err
	}
	if err := reg.Write(ctx, repo.Digest(d.String()), img); err != nil {
		return registry.Classify(repo.String(), "record the previous digest in", err)
	}
	return nil
}

// Previous is what a record says: the digest before the last move to
// digest, the tags that moved together, and when it says it was written.
type Previous struct {
	Digest string
	Tags   []string
	At     time.Time
}

// maxRecords bounds the records read for one digest: anyone with push
// access can add referrers, and each costs requests. The newest by their
// descriptors' annotations are read first, so junk (unparsable, or dated
// past the clock) cannot push a genuine record out; junk dated "now"
// beyond this many can, and the rollback then fails, naming the count.
const maxRecords = 256

// maxClockSkew is how far a record's own time may run ahead of the
// registry's clock: the runner that wrote it and the registry keep
// different clocks.
const maxClockSkew = 5 * time.Minute

// errNoRecord is a digest with no readable record.
var errNoRecord = errors.New("no record of a previous digest: cipack did not move this tag here, or moved it before records were kept")

// Records reads the records of moves to digest, newest first. Each one
// is read and checked itself (the referrers list, or its fallback tag, is
// anyone's with push access): a record that cannot be read or is not a
// record is passed over, and so is one whose own time is later than the
// registry allows (recordBound). "Newest" is that time, parsed.
func Records(ctx context.Context, reg Reader, repo name.Repository, digest string) ([]Previous, error) {
	idx, err := reg.Referrers(ctx, repo.Digest(digest), PreviousArtifactType)
	if err != nil {
		return nil, err
	}
	var out []Previous
	for _, r := range newestFirst(idx.Manifests, time.Now()) {
		if p, ok := readRecord(ctx, reg, repo.Digest(r.Digest.String()), digest); ok {
			out = append(out, *p)
		}
	}
	if len(out) == 0 {
		return nil, errNoRecord
	}
	slices.SortStableFunc(out, func(a, b Previous) int { return b.At.Compare(a.At) })
	return out, nil
}

// newestFirst orders referrer descriptors by the time their annotations
// claim (the registry copies a manifest's annotations into its
// descriptor), newest first, before the cut at maxRecords: a descriptor
// without a readable time, or dated past now and the skew, goes last.
// The order only decides what is read: each record read is checked on
// its own manifest.
func newestFirst(ds []v1.Descriptor, now time.Time) []v1.Descriptor {
	at := func(d v1.Descriptor) time.Time {
		t, err := time.Parse(time.RFC3339Nano, d.Annotations[annotationCreated])
		if err != nil || t.After(now.Add(maxClockSkew)) {
			return time.Time{}
		}
		return t
	}
	out := slices.Clone(ds)
	slices.SortStableFunc(out, func(a, b v1.Descriptor) int { return at(b).Compare(at(a)) })
	return out[:min(len(out), maxRecords)]
}

// FindPrevious is the newest record of a move to digest that passes
// verifyPrevious: a forged record, newest or not, neither picks the
// target nor blocks the rollback. When none passes, the newest one's
// failure is returned.
func FindPrevious(ctx context.Context, reg Reader, repo name.Repository, digest string) (*Previous, error) {
	records, err := Records(ctx, reg, repo, digest)
	if err != nil {
		return nil, err
	}
	var first error
	for _, p := range records {
		err := verifyPrevious(ctx, reg, repo, p.Digest, digest)
		if err == nil {
			return &p, nil
		}
		if first == nil {
			first = fmt.Errorf("the recorded previous digest %s: %w", p.Digest, err)
		}
	}
	if len(records) > 1 {
		return nil, fmt.Errorf("none of its %d records passes; the newest: %w", len(records), first)
	}
	return nil, first
}

// readRecord reads one record of a move to digest: what it says and when
// it was written; false when it is not a readable, well-formed record, or
// claims a time the registry rules out.
func readRecord(ctx context.Context, reg Reader, ref name.Digest, digest string) (*Previous, bool) {
	desc, err := reg.Get(ctx, ref)
	if err != nil {
		return nil, false
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil || m.Subject == nil || m.Subject.Digest.String() != digest || m.Config.MediaType != types.MediaType(PreviousArtifactType) {
		return nil, false
	}
	at, err := time.Parse(time.RFC3339Nano, m.Annotations[annotationCreated])
	if err != nil {
		return nil, false
	}
	p := &Previous{Digest: m.Annotations[annotationPrevious], At: at}
	if _, err := v1.NewHash(p.Digest); err != nil {
		return nil, false
	}
	if err := json.Unmarshal([]byte(m.Annotations[annotationTags]), &p.Tags); err != nil {
		return nil, false
	}
	times, err := reg.ManifestTimes(ctx, ref)
	if err != nil {
		return nil, false
	}
	if at.After(recordBound(times, time.Now())) {
		return nil, false
	}
	return p, true
}

// recordBound is the latest time a record may claim, from what the
// registry says in its answer for it: its Last-Modified where it sends
// one (the time it stored the record; HTTP dates have whole seconds),
// else its Date (its clock now: a record cannot have been written in the
// future), with maxClockSkew for the writer's clock. A registry that says
// neither (no Date header: a proxy dropped it, or a server that sends
// none) still cannot have stored a record after now: the local clock,
// with the same skew, bounds it (a record dated 2099 never stays newest).
func recordBound(t registry.ManifestTimes, now time.Time) time.Time {
	switch {
	case !t.Modified.IsZero():
		return t.Modified.Add(time.Second + maxClockSkew)
	case !t.Now.IsZero():
		return t.Now.Add(time.Second + maxClockSkew)
	}
	return now.Add(maxClockSkew)
}

// ReasonRolledBack is a tag set moved back to its previous digest.
const ReasonRolledBack = "ROLLED_BACK"

// Rollback moves each target's tag, and the tags that moved with it, back
// to the digest they held before cipack last moved them, only where every
// one still points at the digest cipack moved it to (compare before
// move). The move back is recorded too, so a rollback can be undone.
func Rollback(ctx context.Context, reg Registry, targets []Target) []Outcome {
	var out []Outcome
	for _, t := range targets {
		out = append(out, rollbackOne(ctx, reg, t))
	}
	return out
}

func rollbackOne(ctx context.Context, reg Registry, t Target) Outcome {
	start := time.Now()
	o := Outcome{Image: t.Image, Verdict: Rebase, Reason: ReasonRolledBack}
	fail := func(err error) Outcome {
		o.Verdict, o.Error, o.Duration = Failed, err.Error(), time.Since(start)
		return o
	}
	ref, err := reg.Parse(t.Image)
	if err != nil {
		return fail(fmt.Errorf("invalid image reference: %w", err))
	}
	if _, isTag := ref.(name.Tag); !isTag {
		return fail(fmt.Errorf("%s is a digest: name the tag to roll back", t.Image))
	}
	cur, err := reg.Head(ctx, ref)
	if err != nil {
		return fail(err)
	}
	o.OldDigest = cur.Digest.String()
	prev, err := FindPrevious(ctx, reg, ref.Context(), o.OldDigest)
	if errors.Is(err, ErrNotARebase) {
		o.Reason = ReasonNotARebase
		return fail(fmt.Errorf("%s@%s: %w; nothing was moved", t.Image, o.OldDigest, err))
	}
	if err != nil {
		return fail(fmt.Errorf("%s@%s: %w", t.Image, o.OldDigest, err))
	}
	targets, seen, err := rollbackTargets(ctx, reg, ref, t.Tags, prev.Tags, o.OldDigest)
	if err != nil {
		return fail(err)
	}
	back := ref.Context().Digest(prev.Digest)
	desc, err := reg.Get(ctx, back)
	if err != nil {
		return fail(fmt.Errorf("the previous digest is gone: %w", err))
	}
	if err := recordPrevious(ctx, reg, ref.Context(), desc.Descriptor, o.OldDigest, names(targets), time.Now()); err != nil {
		return fail(err)
	}
	tags, err := reg.MoveTags(ctx, targets, desc, seen)
	if err != nil {
		return fail(err)
	}
	o.NewDigest, o.Tags, o.Applied, o.Duration = prev.Digest, tags, true, time.Since(start)
	o.Detail = fmt.Sprintf("back to %s", short(prev.Digest))
	return o
}

// rollbackTargets is the tag set a rollback moves: the image's tag, the
// fleet's tags for it and the record's, each once, all required on the
// digest being rolled back (a set left split would stay split: the
// fleet's tags must move with the image's, and a record may name fewer).
// A record is an artifact anyone with push access can write: its tags
// outside the image's repository are passed over; a fleet tag there is
// refused, naming it.
func rollbackTargets(ctx context.Context, reg Reader, ref name.Reference, fleetTags, recordTags []string, current string) ([]name.Reference, map[string]string, error) {
	targets := []name.Reference{ref}
	has := map[string]bool{CanonicalImage(ref.String()): true}
	add := func(tag string, fromFleet bool) error {
		r, err := reg.Parse(tag)
		_, isTag := r.(name.Tag)
		switch {
		case err != nil || !isTag || r.Context().String() != ref.Context().String():
			if fromFleet {
				return fmt.Errorf("fleet tag %s is not a tag in %s's repository: a rollback moves tags of the image's repository only; nothing was moved", tag, ref.Context())
			}
		case !has[CanonicalImage(r.String())]:
			has[CanonicalImage(r.String())] = true
			targets = append(targets, r)
		}
		return nil
	}
	for _, tag := range fleetTags {
		if err := add(tag, true); err != nil {
			return nil, nil, err
		}
	}
	for _, tag := range recordTags {
		_ = add(tag, false)
	}
	now, err := reg.TagDigests(ctx, targets)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]string{}
	for _, r := range targets {
		if d := now[r.String()]; d != current {
			return nil, nil, fmt.Errorf("%s is at %s, not on %s with %s: the tag set is split; nothing was moved: converge it first (cipack rebase)", r, orAbsent(d), short(current), ref)
		}
		seen[r.String()] = current
	}
	return targets, seen, nil
}

func names(refs []name.Reference) []string {
	out := make([]string, len(refs))
	for i, r := range refs {
		out[i] = r.String()
	}
	return out
}

// descriptorOf is the descriptor of a manifest cipack pushed.
func descriptorOf(t remote.Taggable) (v1.Descriptor, error) {
	raw, err := t.RawManifest()
	if err != nil {
		return v1.Descriptor{}, err
	}
	mt := types.OCIManifestSchema1
	if m, ok := t.(interface {
		MediaType() (types.MediaType, error)
	}); ok {
		if mt, err = m.MediaType(); err != nil {
			return v1.Descriptor{}, err
		}
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mt, Size: int64(len(raw)), Digest: h}, nil
}

// verifyPrevious checks a record's previous digest: the same build as the
// current one, sitting exactly on the run image digest it records, in the
// run image repository the current image records (a record, and the image
// it names, are anyone's with push access to this repository; the run
// image's repository is not).
func verifyPrevious(ctx context.Context, reg Reader, repo name.Repository, previous, current string) error {
	if err := VerifySameBuild(ctx, reg, repo, previous, current); err != nil {
		return err
	}
	cur, err := Inspect(ctx, reg, repo.Digest(current))
	if err != nil {
		return err
	}
	runRepos := map[string]bool{}
	for _, c := range cur.Children {
		if r, err := name.NewDigest(c.RecordedRef, name.WeakValidation); err == nil {
			runRepos[r.Context().String()] = true
		}
	}
	return verifyBase(ctx, reg, repo, previous, func(c *Child) (name.Reference, error) {
		r, err := name.NewDigest(c.RecordedRef, name.WeakValidation)
		if err != nil || !runRepos[r.Context().String()] {
			return nil, fmt.Errorf("it records run image %q, not one the current image's run image repository holds: %w", c.RecordedRef, ErrNotARebase)
		}
		return r, nil
	})
}
