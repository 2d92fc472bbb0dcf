package registry

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
)

// ErrMovedSinceInspection marks a tag that someone else moved after the
// caller looked at it: moving it now would overwrite a newer push.
var ErrMovedSinceInspection = errors.New("moved since inspection")

// MoveTags points every target at t, all or none. When seen is given
// (reference → digest the caller saw, "" for absent), it first checks that
// no target moved since; if one did, nothing moves. On a failed move, the
// targets already moved are put back on their old manifests. Registries
// have no compare-and-swap on tags: the check narrows the race to the
// moves themselves. t must already be in each target's repository (pushed
// by digest).
func (c *Client) MoveTags(ctx context.Context, targets []name.Reference, t remote.Taggable, seen map[string]string) ([]string, error) {
	if seen != nil {
		now, err := c.TagDigests(ctx, targets)
		if err != nil {
			return nil, err
		}
		for _, r := range targets {
			if was := seen[r.String()]; now[r.String()] != was {
				return nil, fmt.Errorf("%s %w (was %s, now %s): nothing was moved; rerun", r, ErrMovedSinceInspection, orAbsent(was), orAbsent(now[r.String()]))
			}
		}
	}
	type moved struct {
		ref name.Reference
		old *remote.Descriptor
	}
	var done []moved
	for _, r := range targets {
		old, err := c.Get(ctx, r)
		if err != nil {
			old = nil // a tag that does not exist yet has nothing to restore
		}
		if err = c.Tag(ctx, asTag(r), t); err != nil {
			var rollbackErr error
			for _, m := range done {
				if m.old != nil {
					rollbackErr = errors.Join(rollbackErr, c.Put(context.WithoutCancel(ctx), m.ref, m.old))
				}
			}
			err = Classify(r.String(), "move tag", err)
			if rollbackErr != nil {
				return nil, fmt.Errorf("%w; and restoring the tags already moved failed: %v", err, rollbackErr)
			}
			return nil, fmt.Errorf("%w (tags already moved were put back)", err)
		}
		done = append(done, moved{r, old})
	}
	out := make([]string, len(targets))
	for i, r := range targets {
		out[i] = r.String()
	}
	return out, nil
}

func asTag(r name.Reference) name.Tag {
	if t, ok := r.(name.Tag); ok {
		return t
	}
	return r.Context().Tag("latest")
}

func orAbsent(d string) string {
	if d == "" {
		return "absent"
	}
	return d
}

// TagDigests reads where each reference points (one HEAD each, at once:
// callers pass a handful), keyed by reference; "" for one that does not
// exist. Any other failure is returned.
func (c *Client) TagDigests(ctx context.Context, refs []name.Reference) (map[string]string, error) {
	digests := make([]string, len(refs))
	errs := make([]error, len(refs))
	var wg sync.WaitGroup
	for i, r := range refs {
		wg.Go(func() {
			d, err := c.Head(ctx, r)
			switch {
			case err == nil:
				digests[i] = d.Digest.String()
			case exit.Code(err) != exit.ImageNotFound:
				errs[i] = err
			}
		})
	}
	wg.Wait()
	out := make(map[string]string, len(refs))
	for i, r := range refs {
		if errs[i] != nil {
			return nil, errs[i]
		}
		out[r.String()] = digests[i]
	}
	return out, nil
}
