package build

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// The lifecycle never writes the user's tags. It exports under one
// staging tag in the image's own repository (same registry and
// repository, so the lifecycle's same-registry rule holds and every blob
// is already where the tags need it); cipack reads what was pushed, by
// digest, checks it, and only then moves the user's tags, all or none.
// A check that fails after export (a forged record, an SBOM that cannot
// be copied, a report that cannot be read) then leaves every tag where
// it was.

// stagingPrefix starts the staging tag's name; the rest is random, so two
// builds of one image never share one.
const stagingPrefix = "cipack-tmp-"

// stagingTag names a fresh staging tag in image's repository.
func stagingTag(image name.Reference) (name.Tag, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return name.Tag{}, fmt.Errorf("name the staging tag: %w", err)
	}
	return image.Context().Tag(stagingPrefix + hex.EncodeToString(b[:])), nil
}

// staged is what the lifecycle pushed under the staging tag, read by
// digest.
type staged struct {
	desc *remote.Descriptor
	cf   *v1.ConfigFile
}

// readStaged reads the image under the staging tag and checks it is the
// one the report names: the registry's digest is what cipack reports,
// never only the report's.
func readStaged(ctx context.Context, reg *registry.Client, tag name.Tag, reported string) (staged, error) {
	// One GET by tag, no HEAD before it: the digest compared is the hash
	// of the manifest as read (computed here: ggcr takes a schema 1
	// manifest's digest from the registry's header instead).
	desc, err := reg.Get(ctx, tag)
	if err != nil {
		return staged{}, exit.New(exit.Export, tag.String(), fmt.Errorf("read the exported image: %w", err),
			"the lifecycle reported success but its image could not be read; nothing was tagged: rerun the build")
	}
	got := ""
	if h, _, err := v1.SHA256(bytes.NewReader(desc.Manifest)); err == nil {
		got = h.String()
	}
	if got != reported || desc.Digest.String() != reported {
		return staged{}, exit.New(exit.Export, tag.String(),
			fmt.Errorf("the registry holds %s but the lifecycle's report says %s", got, reported),
			"the report was altered or the push did not land; nothing was tagged")
	}
	img, err := desc.Image()
	var cf *v1.ConfigFile
	if err == nil {
		cf, err = img.ConfigFile()
	}
	if err != nil {
		return staged{}, exit.New(exit.Export, tag.String(), fmt.Errorf("read the exported image's config: %w", err), "nothing was tagged: rerun the build")
	}
	return staged{desc: desc, cf: cf}, nil
}

// moveTags points the image and its tags at the checked image, all or
// none, refusing a tag moved by someone else since the preflight; then it
// reads them all back (another build may have written one meanwhile).
func moveTags(ctx context.Context, p *buildPlan, reg *registry.Client, s staged, drop func(pushed bool) string) (string, error) {
	if err := copyToRepos(ctx, reg, p.refs.written(), p.staging.Context(), s); err != nil {
		return "", err
	}
	if _, err := reg.MoveTags(ctx, p.refs.written(), s.desc, p.refs.before); err != nil {
		// Another build of the same inputs may have tagged the same
		// image meanwhile: nothing is left to move.
		if errors.Is(err, registry.ErrMovedSinceInspection) && allOn(ctx, reg, p.refs.written(), s.desc.Digest.String()) {
			return s.desc.Digest.String(), nil
		}
		if errors.Is(err, registry.ErrMovedSinceInspection) {
			return "", exit.New(exit.Export, "--tag", err, "a tag moved while the build ran; nothing was tagged: rerun")
		}
		return "", fmt.Errorf("tag the built image: %w", err)
	}
	// The tags moved: the staging tag is nobody's now, and dropping it
	// is independent of reading the tags back.
	dropped := make(chan struct{})
	go func() { drop(true); close(dropped) }()
	digest, err := verifyPushed(ctx, reg, p.refs.written(), s.desc.Digest.String())
	<-dropped
	return digest, err
}

// onceDrop makes drop run once; later calls return the first's result.
func onceDrop(drop func(pushed bool) string) func(pushed bool) string {
	var once sync.Once
	var left string
	return func(pushed bool) string {
		once.Do(func() { left = drop(pushed) })
		return left
	}
}

// copyToRepos pushes the checked image, by digest, to each repository a
// tag names besides the staging tag's: the lifecycle exported there
// alone, and a registry refuses a tag on a manifest whose blobs its
// repository lacks (MANIFEST_BLOB_UNKNOWN). By digest, so no tag moves
// before MoveTags; blobs on the same registry are mounted, not copied.
func copyToRepos(ctx context.Context, reg *registry.Client, refs []name.Reference, home name.Repository, s staged) error {
	done := map[string]bool{home.Name(): true}
	for _, r := range refs {
		repo := r.Context()
		if done[repo.Name()] {
			continue
		}
		done[repo.Name()] = true
		img, err := s.desc.Image()
		if err == nil {
			err = reg.Write(ctx, repo.Digest(s.desc.Digest.String()), img)
		}
		if err != nil {
			return registry.Classify(r.String(), "push", fmt.Errorf("copy the built image to %s before tagging: %w", repo, err))
		}
	}
	return nil
}

// allOn reports whether every ref already holds digest.
func allOn(ctx context.Context, reg *registry.Client, refs []name.Reference, digest string) bool {
	now, err := reg.TagDigests(ctx, refs)
	if err != nil {
		return false
	}
	for _, r := range refs {
		if now[r.String()] != digest {
			return false
		}
	}
	return true
}

// dropStaging removes the staging tag, best effort (never the image: the
// user's tags may hold it; see registry.DropTag). It returns the tag when it could not be
// deleted, and says so in the log. pushed: the tag is known to exist;
// otherwise it is looked up first, so a build that stopped before export
// asks the registry to delete nothing.
func dropStaging(ctx context.Context, reg *registry.Client, tag name.Tag, pushed bool, log io.Writer) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	if !pushed {
		if d, err := reg.Head(ctx, tag); err != nil || d == nil {
			return ""
		}
	}
	if err := reg.DropTag(ctx, tag); err != nil {
		fmt.Fprintf(log, "cipack: warning: the staging tag %s is left in the registry: %v\n", tag, err)
		return tag.String()
	}
	return ""
}
