package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/cipack/cipack/internal/exit"
)

// ErrMovedSinceInspection marks a tag that someone else moved after the
// caller looked at it: moving it now would overwrite a newer push.
var ErrMovedSinceInspection = errors.New("moved since inspection")

// ErrNotATag marks a digest reference given as a tag to move: a digest
// cannot be pointed elsewhere, and guessing a tag for it (":latest")
// would move a tag nobody named.
var ErrNotATag = errors.New("is a digest reference, not a tag")

// ErrTagsLeftMoved marks a failed move whose undo failed too: some tags
// still point at the new manifest, and the error lists them.
var ErrTagsLeftMoved = errors.New("tags left on the new manifest")

// MoveTags points every target at t, all or none. Targets must be tags.
// It first reads where each target points; a target the registry does not
// know (404) is absent, any other failed read stops it before anything
// moves: restoring a tag needs its old manifest. When seen is given
// (reference → digest the caller saw, "" for absent), no target may have
// moved since; if one did, nothing moves. Targets that exist move first,
// and targets that did not exist are created last, once every existing
// one has moved: a moved tag is put back with a PUT, while a created one
// could only be undone with a DELETE, which many registries refuse
// (distribution 2.8, Debian's docker-registry, answers DIGEST_INVALID).
// On a failed move, the targets already moved are put back on their old
// manifests and those created are deleted; the error names each one that
// could not be undone. A target already on t is not written again.
// Registries have no compare-and-swap on tags: the
// check narrows the race to the moves themselves. t must already be in
// each target's repository (pushed by digest).
func (c *Client) MoveTags(ctx context.Context, targets []name.Reference, t remote.Taggable, seen map[string]string) ([]string, error) {
	tags, err := asTags(targets)
	if err != nil {
		return nil, err
	}
	olds, err := c.readOld(ctx, tags)
	if err != nil {
		return nil, err
	}
	if seen != nil {
		if err := checkSeen(tags, olds, seen); err != nil {
			return nil, err
		}
	}
	raw, err := t.RawManifest()
	if err != nil {
		return nil, err
	}
	want, _, err := v1.SHA256(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var moved []int
	for _, i := range existingFirst(olds) {
		tag := tags[i]
		// A tag already on t (its old manifest read, and hashed, just
		// now) stays: writing the same manifest again changes nothing.
		if olds[i] != nil && olds[i].Digest == want {
			continue
		}
		if err := c.Tag(ctx, tag, t); err != nil {
			err = Classify(tag.String(), "move tag", err)
			// The caller may have been canceled: the undo must still run.
			return nil, c.undo(context.WithoutCancel(ctx), tags, olds, moved, err)
		}
		moved = append(moved, i)
	}
	return tagStrings(tags), nil
}

// existingFirst orders the indexes of olds: tags that exist (in their
// order), then tags to create.
func existingFirst(olds []*remote.Descriptor) []int {
	var existing, created []int
	for i, o := range olds {
		if o != nil {
			existing = append(existing, i)
		} else {
			created = append(created, i)
		}
	}
	return append(existing, created...)
}

// asTags refuses digest references, all before anything moves.
func asTags(refs []name.Reference) ([]name.Tag, error) {
	tags := make([]name.Tag, len(refs))
	for i, r := range refs {
		tag, ok := r.(name.Tag)
		if !ok {
			return nil, exit.New(exit.Usage, r.String(), fmt.Errorf("%w: nothing was moved", ErrNotATag), "name a tag to move")
		}
		tags[i] = tag
	}
	return tags, nil
}

// readOld reads each tag's current manifest; nil for a tag the registry
// does not know. Any other failure (auth, 5xx, timeout) is returned:
// without the old manifest a failed move could not be undone, and a tag
// that may exist must not be taken for absent.
func (c *Client) readOld(ctx context.Context, tags []name.Tag) ([]*remote.Descriptor, error) {
	olds, err := readEach(len(tags), func(i int) (*remote.Descriptor, error) { return c.Get(ctx, tags[i]) })
	if err != nil {
		return nil, fmt.Errorf("%w; nothing was moved", err)
	}
	return olds, nil
}

// readEach runs read for 0..n-1 at once (callers pass a handful of
// references) and returns the results in order: the zero T where the
// registry does not know the reference (404), the first other failure.
func readEach[T any](n int, read func(i int) (T, error)) ([]T, error) {
	out := make([]T, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			v, err := read(i)
			switch {
			case err == nil:
				out[i] = v
			case exit.Code(err) != exit.ImageNotFound:
				errs[i] = err
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// checkSeen fails when a tag no longer points where the caller saw it.
func checkSeen(tags []name.Tag, olds []*remote.Descriptor, seen map[string]string) error {
	for i, tag := range tags {
		now := ""
		if olds[i] != nil {
			now = olds[i].Digest.String()
		}
		if was := seen[tag.String()]; now != was {
			return fmt.Errorf("%s %w (was %s, now %s): nothing was moved; rerun", tag, ErrMovedSinceInspection, orAbsent(was), orAbsent(now))
		}
	}
	return nil
}

// undo puts the moved tags (indexes into tags) back, on their old
// manifest or deleted when there was none, after moveErr, and says
// truthfully which ones it could not.
func (c *Client) undo(ctx context.Context, tags []name.Tag, olds []*remote.Descriptor, moved []int, moveErr error) error {
	if len(moved) == 0 {
		return fmt.Errorf("%w; nothing was moved", moveErr)
	}
	var left []string
	var back []name.Tag
	for _, i := range moved {
		tag := tags[i]
		back = append(back, tag)
		if olds[i] != nil {
			if err := c.Put(ctx, tag, olds[i]); err != nil {
				left = append(left, fmt.Sprintf("%s could not be put back on %s: %v", tag, olds[i].Digest, Classify(tag.String(), "restore tag", err)))
			}
			continue
		}
		if err := c.DeleteTag(ctx, tag); err != nil {
			left = append(left, fmt.Sprintf("%s did not exist before and could not be deleted (not undone: it still points at the new manifest): %v", tag, err))
		}
	}
	if left != nil {
		return fmt.Errorf("%w; and %w: %s", moveErr, ErrTagsLeftMoved, strings.Join(left, "; "))
	}
	return fmt.Errorf("%w (tags already moved were put back: %s)", moveErr, strings.Join(tagStrings(back), ", "))
}

// DeleteTag removes tag (not the manifest it names). A tag already gone
// is no failure. Many registries refuse DELETE on tags: the error says so.
func (c *Client) DeleteTag(ctx context.Context, tag name.Tag) error {
	err := remote.Delete(tag, c.RemoteOptions(ctx)...)
	var te *transport.Error
	// distribution 2.8 (Debian's docker-registry) parses the reference of
	// a DELETE as a digest and answers DIGEST_INVALID for a tag.
	if errors.As(err, &te) && (te.StatusCode == http.StatusMethodNotAllowed || hasCode(te, transport.UnsupportedErrorCode) || hasCode(te, transport.DigestInvalidErrorCode)) {
		return fmt.Errorf("the registry refuses to delete tags (delete %s by hand): %w", tag, err)
	}
	err = Classify(tag.String(), "delete", err)
	if exit.Code(err) == exit.ImageNotFound {
		return nil
	}
	return err
}

func hasCode(te *transport.Error, code transport.ErrorCode) bool {
	for _, d := range te.Errors {
		if d.Code == code {
			return true
		}
	}
	return false
}

func tagStrings(tags []name.Tag) []string {
	s := make([]string, len(tags))
	for i, t := range tags {
		s[i] = t.String()
	}
	return s
}

func orAbsent(d string) string {
	if d == "" {
		return "absent"
	}
	return d
}

// TagDigests reads where each reference points (one HEAD each, at once),
// keyed by reference; "" for one that does not exist. Any other failure
// is returned.
func (c *Client) TagDigests(ctx context.Context, refs []name.Reference) (map[string]string, error) {
	heads, err := readEach(len(refs), func(i int) (*v1.Descriptor, error) { return c.Head(ctx, refs[i]) })
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(refs))
	for i, r := range refs {
		out[r.String()] = ""
		if heads[i] != nil {
			out[r.String()] = heads[i].Digest.String()
		}
	}
	return out, nil
}
