package registry

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
)

// PlaceholderLabel marks the manifest DropTag makes to remove a tag.
const PlaceholderLabel = "io.cipack.placeholder"

// DropTag removes a tag that only its caller uses (a build's staging
// tag), never the manifest it named. It asks DELETE on the tag first;
// where the registry refuses that (distribution parses the reference as
// a digest), it points the tag at a placeholder made for it (an empty
// image with a random label, so no other tag or image can be on it) and
// deletes that manifest by digest, which takes the tags on it along. The
// tag is looked up afterwards: only a registry that no longer has it
// counts as done.
// Registries that refuse both keep the tag: the error says so.
func (c *Client) DropTag(ctx context.Context, tag name.Tag) error {
	err := c.DeleteTag(ctx, tag)
	if err == nil {
		// Some registries answer a DELETE they do not do with 404 (which
		// DeleteTag takes for "already gone"): look.
		if _, herr := c.Head(ctx, tag); exit.Code(herr) == exit.ImageNotFound {
			return nil
		}
		err = fmt.Errorf("the registry answered the DELETE of %s but still has the tag", tag)
	}
	placeholder, perr := newPlaceholder()
	if perr != nil {
		return err
	}
	if perr = c.Write(ctx, tag, placeholder); perr != nil {
		return fmt.Errorf("%w; pointing it at a placeholder to delete failed too: %w", err, perr)
	}
	d, perr := placeholder.Digest()
	if perr != nil {
		return err
	}
	if perr = remote.Delete(tag.Context().Digest(d.String()), c.RemoteOptions(ctx)...); perr != nil {
		return fmt.Errorf("%w; deleting the placeholder it now names (%s) failed too: %w", err, d, perr)
	}
	if _, herr := c.Head(ctx, tag); exit.Code(herr) != exit.ImageNotFound {
		return fmt.Errorf("%w; it now names a placeholder (%s) the registry kept", err, d)
	}
	return nil
}

func newPlaceholder() (v1.Image, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	return mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "linux", Architecture: "amd64",
		Config: v1.Config{Labels: map[string]string{PlaceholderLabel: hex.EncodeToString(b[:])}},
	})
}
