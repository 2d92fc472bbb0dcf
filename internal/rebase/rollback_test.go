package rebase

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// A record written for a move is found from the new digest, names the
// previous digest and the tags, and the newest record wins.
func TestPreviousDigestIsRecordedAndFound(t *testing.T) {
	reg, repo, digests, desc := threeImages(t)
	ctx := context.Background()
	tags := []string{repo.Tag("latest").String(), repo.Tag("stable").String()}
	now := time.Now()
	if err := recordPrevious(ctx, reg, repo, desc.Descriptor, digests[0], tags, now); err != nil {
		t.Fatal(err)
	}
	if err := recordPrevious(ctx, reg, repo, desc.Descriptor, digests[1], tags, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	records, err := Records(ctx, reg, repo, digests[2])
	if err != nil {
		t.Fatal(err)
	}
	if len(records) != 2 || records[0].Digest != digests[1] || records[1].Digest != digests[0] || strings.Join(records[0].Tags, " ") != strings.Join(tags, " ") {
		t.Fatalf("found %+v, want the newer record (%s) first, with its tags", records, digests[1])
	}
	if _, err := Records(ctx, reg, repo, digests[0]); err == nil {
		t.Fatal("a digest with no record gave one")
	}
}

// "Newest" is the records' own times, parsed: RFC 3339 drops trailing
// zeros, so "…:00Z" sorts after "…:00.5Z" as text while it is older.
func TestNewestRecordByTimeNotByText(t *testing.T) {
	reg, repo, digests, desc := threeImages(t)
	ctx := context.Background()
	whole := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	if err := recordPrevious(ctx, reg, repo, desc.Descriptor, digests[0], nil, whole); err != nil {
		t.Fatal(err)
	}
	if err := recordPrevious(ctx, reg, repo, desc.Descriptor, digests[1], nil, whole.Add(500*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if r, err := Records(ctx, reg, repo, digests[2]); err != nil || r[0].Digest != digests[1] {
		t.Fatalf("found %+v (%v), want the record written 500 ms later first", r, err)
	}
}

// A record's own time is bounded by what the registry says: one that
// claims a time after the registry's clock (its Date; go-containerregistry's
// registry, like distribution, sends no Last-Modified for manifests) is
// passed over, so it cannot stay "newest" forever.
func TestRecordClaimingAFutureTimeIsPassedOver(t *testing.T) {
	reg, repo, digests, desc := threeImages(t)
	ctx := context.Background()
	now := time.Now()
	if err := recordPrevious(ctx, reg, repo, desc.Descriptor, digests[0], nil, now); err != nil {
		t.Fatal(err)
	}
	if err := recordPrevious(ctx, reg, repo, desc.Descriptor, digests[1], nil, now.Add(maxClockSkew+time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := recordPrevious(ctx, reg, repo, desc.Descriptor, digests[1], nil, time.Date(2099, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	r, err := Records(ctx, reg, repo, digests[2])
	if err != nil || len(r) != 1 || r[0].Digest != digests[0] {
		t.Fatalf("records %+v (%v), want only the one written now", r, err)
	}
}

// threeImages pushes three images by digest into team/app on an
// in-process registry, and reads the third's descriptor: the subject of
// the records the tests write.
func threeImages(t *testing.T) (Registry, name.Repository, []string, *remote.Descriptor) {
	t.Helper()
	host, reg := inProcessRegistry(t)
	repo, _ := name.NewRepository(host+"/team/app", name.Insecure)
	var digests []string
	for i := 0; i < 3; i++ {
		img, _ := random.Image(64, 1)
		d, _ := img.Digest()
		if err := remote.Write(repo.Digest(d.String()), img); err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d.String())
	}
	desc, err := reg.Get(context.Background(), repo.Digest(digests[2]))
	if err != nil {
		t.Fatal(err)
	}
	return reg, repo, digests, desc
}
