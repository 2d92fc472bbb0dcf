package rebase

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/buildpacks/imgutil"
	imgremote "github.com/buildpacks/imgutil/remote"
	"github.com/buildpacks/lifecycle/api"
	"github.com/buildpacks/lifecycle/phase"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/registry"
)

// ChildPlan is one platform's image to rebase.
type ChildPlan struct {
	Child       *Child
	RunImageRef name.Reference // the run image's name, as the rebaser records it
	RunImage    v1.Image       // the run image of the child's own platform
	Force       bool           // the name policy allowed a rename
}

// Plan is one rebase to apply: the children of an app tag that need it
// (all others are kept byte for byte), and the tags that move with it.
type Plan struct {
	App    *Inspected
	Rebase []ChildPlan
	Tags   []string // more tags that must land on the new digest
	// Seen is where the image's tag and each of Tags pointed when the
	// sweep inspected them (reference → digest, "" for absent): a tag that
	// moved since then was pushed by someone else, and is not overwritten.
	Seen map[string]string
}

// Applied is what a rebase pushed.
type Applied struct {
	Digest string
	Tags   []string
	// Children maps each rebased child's old digest to its new one.
	Children map[string]string
}

// Apply rebases with the lifecycle's own phase.Rebaser, in process, then
// publishes the result so that every tag ends on the new digest or none
// moves: new images are pushed by digest first (no tag touched); for an
// index, the rebased children first, then a new index that keeps every
// other child, the media type and annotations; then the tags move. Within
// one registry no layer bytes move: app layers exist, base layers are
// mounted from the run image's repository.
func Apply(ctx context.Context, reg Registry, p Plan, log io.Writer) (*Applied, error) {
	out, result, err := push(ctx, reg, p, log)
	if err != nil {
		return nil, err
	}
	desc, err := descriptorOf(result)
	if err != nil {
		return nil, err
	}
	if err := recordPrevious(ctx, reg, p.App.Ref.Context(), desc, p.App.Digest, append([]string{p.App.Ref.String()}, p.Tags...), time.Now()); err != nil {
		return nil, err
	}
	tags, err := moveTags(ctx, reg, p, result)
	if err != nil {
		return nil, err
	}
	out.Tags = tags
	return out, nil
}

// Stage is Apply without the tag moves: the rebased image is pushed by
// digest only, a candidate that --promote moves the tags to later.
func Stage(ctx context.Context, reg Registry, p Plan, log io.Writer) (*Applied, error) {
	out, _, err := push(ctx, reg, p, log)
	return out, err
}

// push rebases and pushes the result by digest (children first, then a
// new index), touching no tag.
func push(ctx context.Context, reg Writer, p Plan, log io.Writer) (*Applied, remote.Taggable, error) {
	out := &Applied{Children: map[string]string{}}
	rebased := map[*Child]v1.Image{}
	for _, cp := range p.Rebase {
		img, err := rebaseChild(p.App.Ref.String(), cp, log)
		if err != nil {
			return nil, nil, err
		}
		digest, err := img.Digest()
		if err != nil {
			return nil, nil, err
		}
		byDigest := p.App.Ref.Context().Digest(digest.String())
		if err := reg.Write(ctx, byDigest, img); err != nil {
			return nil, nil, registry.Classify(byDigest.String(), "push", err)
		}
		rebased[cp.Child] = img
		out.Children[cp.Child.App.Digest] = digest.String()
	}
	var result remote.Taggable
	if p.App.Index == nil {
		if len(p.Rebase) != 1 {
			return nil, nil, fmt.Errorf("%s: a single image takes one rebase, not %d", p.App.Ref, len(p.Rebase))
		}
		result = rebased[p.Rebase[0].Child]
	} else {
		idx, err := newIndex(p.App, rebased)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: write the new index: %w", p.App.Ref, err)
		}
		byDigest := p.App.Ref.Context().Digest(idx.digest.String())
		if err := reg.Put(ctx, byDigest, idx); err != nil {
			return nil, nil, registry.Classify(byDigest.String(), "push", err)
		}
		result = idx
	}
	digest, err := digestOf(result)
	if err != nil {
		return nil, nil, err
	}
	out.Digest = digest
	return out, result, nil
}

// rebaseChild runs the lifecycle's Rebaser on one platform's image.
func rebaseChild(name string, cp ChildPlan, log io.Writer) (v1.Image, error) {
	c := cp.Child
	// The platform API is the one cipack speaks as a platform, not the
	// one the app was built with: it selects the rebaser's rules (name
	// check, metadata written), as CNB_PLATFORM_API does for the binary.
	api, err := api.NewVersion(cnb.NewestAPI())
	if err != nil {
		return nil, err
	}
	working, err := newStaged(name, c.Image)
	if err != nil {
		return nil, fmt.Errorf("%s: prepare rebase: %w", c.App.Ref, err)
	}
	base, err := newStaged(cp.RunImageRef.String(), cp.RunImage)
	if err != nil {
		return nil, fmt.Errorf("%s: prepare run image: %w", cp.RunImageRef, err)
	}
	rebaser := &phase.Rebaser{Logger: newLogger(log, c.App.Ref), PlatformAPI: api, Force: cp.Force}
	if _, err := rebaser.Rebase(working, base, name, nil); err != nil {
		return nil, fmt.Errorf("%s: rebase onto %s: %w", c.App.Ref, cp.RunImageRef, err)
	}
	return working.UnderlyingImage(), nil
}

func digestOf(t remote.Taggable) (string, error) {
	switch v := t.(type) {
	case v1.Image:
		d, err := v.Digest()
		return d.String(), err
	case *rawIndex:
		return v.digest.String(), nil
	}
	return "", fmt.Errorf("unknown manifest kind %T", t)
}

// rawIndex is an index manifest as bytes, written as is.
type rawIndex struct {
	raw       []byte
	mediaType types.MediaType
	digest    v1.Hash
}

func (r *rawIndex) RawManifest() ([]byte, error)        { return r.raw, nil }
func (r *rawIndex) MediaType() (types.MediaType, error) { return r.mediaType, nil }

// newIndex is in's index with each rebased child's entry pointing at its
// new image (digest, size, media type). Everything else — the other
// children, platforms, annotations, the index's own media type and fields —
// is kept as it was: the JSON is edited, not regenerated from a struct
// that would drop what it does not know.
func newIndex(in *Inspected, rebased map[*Child]v1.Image) (*rawIndex, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(in.Desc.Manifest, &doc); err != nil {
		return nil, err
	}
	var entries []map[string]json.RawMessage
	if err := json.Unmarshal(doc["manifests"], &entries); err != nil {
		return nil, err
	}
	newDigest := map[string]v1.Image{}
	for c, img := range rebased {
		newDigest[c.Descriptor.Digest.String()] = img
	}
	for _, e := range entries {
		var d string
		if err := json.Unmarshal(e["digest"], &d); err != nil {
			return nil, err
		}
		img, ok := newDigest[d]
		if !ok {
			continue
		}
		digest, err := img.Digest()
		if err != nil {
			return nil, err
		}
		size, err := img.Size()
		if err != nil {
			return nil, err
		}
		mt, err := img.MediaType()
		if err != nil {
			return nil, err
		}
		e["digest"], _ = json.Marshal(digest.String())
		e["size"], _ = json.Marshal(size)
		e["mediaType"], _ = json.Marshal(mt)
	}
	var err error
	if doc["manifests"], err = json.Marshal(entries); err != nil {
		return nil, err
	}
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	h, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	return &rawIndex{raw: raw, mediaType: in.Desc.MediaType, digest: h}, nil
}

// Converge points the tags of p that diverged from the image back at the
// image's own digest (a sweep that was killed between tag moves leaves
// them so), with the same compare-before-move as a rebase. It writes no
// rollback record: the move it finishes was recorded by the rebase that
// began it (records are written before any tag moves), and a rollback
// puts the whole tag set back to that record's previous digest.
func Converge(ctx context.Context, reg Registry, p Plan) (*Applied, error) {
	tags, err := moveTags(ctx, reg, p, p.App.Desc)
	if err != nil {
		return nil, err
	}
	return &Applied{Digest: p.App.Digest, Tags: tags}, nil
}

// moveTags points the image's tag and p.Tags at img, all or none, after
// checking that none moved since the sweep saw it (p.Seen).
func moveTags(ctx context.Context, reg Registry, p Plan, img remote.Taggable) ([]string, error) {
	targets := []name.Reference{p.App.Ref}
	for _, t := range p.Tags {
		r, err := reg.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("tag %q: %w", t, err)
		}
		targets = append(targets, r)
	}
	return reg.MoveTags(ctx, targets, img, p.Seen)
}

// staged is an imgutil.Image over an image cipack already fetched. The
// Rebaser "saves" it by recording nothing: cipack publishes the result
// itself, by digest first, so that no tag moves before all can.
type staged struct {
	*imgutil.CNBImageCore
	name string
}

func newStaged(ref string, img v1.Image) (*staged, error) {
	opts := imgutil.ImageOptions{BaseImage: img}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	opts.Platform = imgutil.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
	opts.MediaTypes = imgutil.GetPreferredMediaTypes(opts)
	// The same normalization imgutil's remote.NewImage applies, so the
	// result matches the lifecycle rebaser binary's.
	if opts.BaseImage, _, err = imgutil.EnsureMediaTypesAndLayers(img, opts.MediaTypes, imgutil.PreserveLayers); err != nil {
		return nil, err
	}
	core, err := imgutil.NewCNBImage(opts)
	if err != nil {
		return nil, err
	}
	return &staged{CNBImageCore: core, name: ref}, nil
}

func (s *staged) Found() bool              { return true }
func (s *staged) Kind() string             { return "remote" }
func (s *staged) Name() string             { return s.name }
func (s *staged) Rename(n string)          { s.name = n }
func (s *staged) Valid() bool              { return true }
func (s *staged) Delete() error            { return errors.New("staged images cannot be deleted") }
func (s *staged) Save(add ...string) error { return s.SaveAs(s.name, add...) }
func (s *staged) SaveFile() (string, error) {
	return "", errors.New("staged images are not saved to files")
}

// SaveAs applies what imgutil's remote save would (created-at and
// history normalization) without pushing.
func (s *staged) SaveAs(string, ...string) error { return s.SetCreatedAtAndHistory() }

func (s *staged) Identifier() (imgutil.Identifier, error) {
	ref, err := name.ParseReference(s.name, name.WeakValidation)
	if err != nil {
		return nil, err
	}
	d, err := s.Digest()
	if err != nil {
		return nil, err
	}
	return imgremote.DigestIdentifier{Digest: ref.Context().Digest(d.String())}, nil
}

// logger adapts the lifecycle's logger interface to a writer, one line per
// message, prefixed with the image.
type logger struct {
	w      io.Writer
	prefix string
}

func newLogger(w io.Writer, image string) *logger { return &logger{w, image + ": "} }

func (l *logger) Debug(string)              {}
func (l *logger) Debugf(string, ...any)     {}
func (l *logger) Info(m string)             { fmt.Fprintln(l.w, l.prefix+m) }
func (l *logger) Infof(f string, a ...any)  { l.Info(fmt.Sprintf(f, a...)) }
func (l *logger) Warn(m string)             { fmt.Fprintln(l.w, l.prefix+"warning: "+m) }
func (l *logger) Warnf(f string, a ...any)  { l.Warn(fmt.Sprintf(f, a...)) }
func (l *logger) Error(m string)            { fmt.Fprintln(l.w, l.prefix+"error: "+m) }
func (l *logger) Errorf(f string, a ...any) { l.Error(fmt.Sprintf(f, a...)) }
