package rebase

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/buildpacks/imgutil"
	imgremote "github.com/buildpacks/imgutil/remote"
	"github.com/buildpacks/lifecycle/api"
	"github.com/buildpacks/lifecycle/phase"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// Plan is one rebase to apply.
type Plan struct {
	App         *Inspected
	RunImageRef name.Reference
	RunImage    v1.Image
	Force       bool     // the name policy allowed a rename
	Tags        []string // more tags that must land on the new digest
	// Seen is where the image's tag and each of Tags pointed when the
	// sweep inspected them (reference → digest, "" for absent): a tag that
	// moved since then was pushed by someone else, and is not overwritten.
	Seen map[string]string
}

// Applied is what a rebase pushed.
type Applied struct {
	Digest string
	Tags   []string
}

// Apply rebases with the lifecycle's own phase.Rebaser, in process, then
// publishes the result so that every tag ends on the new digest or none
// moves: the image is pushed by digest first (no tag touched), then the
// tags move one by one; if one fails, those already moved go back.
// Within one registry no layer bytes move: app layers exist, base layers
// are mounted from the run image's repository.
func Apply(ctx context.Context, reg *registry.Client, p Plan, log io.Writer) (*Applied, error) {
	api, err := api.NewVersion(p.App.PlatformAPI)
	if err != nil {
		return nil, fmt.Errorf("%s: recorded platform API %q: %w", p.App.Ref, p.App.PlatformAPI, err)
	}
	working, err := newStaged(p.App.Ref.String(), p.App.Image)
	if err != nil {
		return nil, fmt.Errorf("%s: prepare rebase: %w", p.App.Ref, err)
	}
	base, err := newStaged(p.RunImageRef.String(), p.RunImage)
	if err != nil {
		return nil, fmt.Errorf("%s: prepare run image: %w", p.RunImageRef, err)
	}
	rebaser := &phase.Rebaser{Logger: newLogger(log, p.App.Ref.String()), PlatformAPI: api, Force: p.Force}
	if _, err := rebaser.Rebase(working, base, p.App.Ref.String(), nil); err != nil {
		return nil, fmt.Errorf("%s: rebase onto %s: %w", p.App.Ref, p.RunImageRef, err)
	}
	img := working.UnderlyingImage()
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	byDigest := p.App.Ref.Context().Digest(digest.String())
	if err := reg.Write(ctx, byDigest, img); err != nil {
		return nil, registry.Classify(byDigest.String(), "push", err)
	}
	tags, err := moveTags(ctx, reg, p, img)
	if err != nil {
		return nil, err
	}
	return &Applied{Digest: digest.String(), Tags: tags}, nil
}

// Converge points the tags of p that diverged from the image back at the
// image's own digest (a sweep that was killed between tag moves leaves
// them so), with the same compare-before-move as a rebase.
func Converge(ctx context.Context, reg *registry.Client, p Plan) (*Applied, error) {
	tags, err := moveTags(ctx, reg, p, p.App.Image)
	if err != nil {
		return nil, err
	}
	return &Applied{Digest: p.App.App.Digest, Tags: tags}, nil
}

// ErrMovedSinceInspection marks a tag that someone else moved while the
// sweep ran: a rebase would overwrite a newer push.
var ErrMovedSinceInspection = errors.New("moved since inspection")

// moveTags points the image's tag and p.Tags at img. Right before, it
// checks that every tag is still where the sweep saw it; if one is not,
// nothing moves. On a failed move it puts the tags it moved back on their
// old manifests. (Registries offer no compare-and-swap on tags: the check
// narrows the window to the moves themselves.)
func moveTags(ctx context.Context, reg *registry.Client, p Plan, img v1.Image) ([]string, error) {
	targets := []name.Reference{p.App.Ref}
	for _, t := range p.Tags {
		r, err := reg.Parse(t)
		if err != nil {
			return nil, fmt.Errorf("tag %q: %w", t, err)
		}
		targets = append(targets, r)
	}
	if p.Seen != nil {
		for _, t := range targets {
			now := ""
			d, err := reg.Head(ctx, t)
			switch {
			case err == nil:
				now = d.Digest.String()
			case exit.Code(err) != exit.ImageNotFound:
				return nil, err
			}
			if was := p.Seen[t.String()]; now != was {
				return nil, fmt.Errorf("%s %w (was %s, now %s): nothing was moved; rerun the sweep", t, ErrMovedSinceInspection, orAbsent(was), orAbsent(now))
			}
		}
	}
	type moved struct {
		ref name.Reference
		old *remote.Descriptor
	}
	var done []moved
	for _, t := range targets {
		old, err := reg.Get(ctx, t)
		if err != nil {
			old = nil // a tag that does not exist yet has nothing to restore
		}
		if err = reg.Tag(ctx, asTag(t), img); err != nil {
			var rollbackErr error
			for _, m := range done {
				if m.old != nil {
					rollbackErr = errors.Join(rollbackErr, reg.Put(context.WithoutCancel(ctx), m.ref, m.old))
				}
			}
			err = registry.Classify(t.String(), "move tag", err)
			if rollbackErr != nil {
				return nil, fmt.Errorf("%w; and restoring the tags already moved failed: %v", err, rollbackErr)
			}
			return nil, fmt.Errorf("%w (tags already moved were put back)", err)
		}
		done = append(done, moved{t, old})
	}
	out := make([]string, len(targets))
	for i, t := range targets {
		out[i] = t.String()
	}
	return out, nil
}

func asTag(r name.Reference) name.Tag {
	if t, ok := r.(name.Tag); ok {
		return t
	}
	return r.Context().Tag("latest")
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

func orAbsent(d string) string {
	if d == "" {
		return "absent"
	}
	return d
}
