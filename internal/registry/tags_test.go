package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/exit"
)

// fault makes the registry answer requests for one tag's manifest with
// status (and, when code is set, an OCI error body), or hang until the
// client gives up. method "read" is GET or HEAD.
type fault struct {
	method, tag string
	status      int
	code        string
	hang        bool
}

// faulty is ggcr's in-process registry behind injected faults. It counts
// manifest writes and each fault's hits.
type faulty struct {
	next   http.Handler
	mu     sync.Mutex
	faults []fault
	hits   map[string]int
	puts   int
	// order is the tags written, in order.
	order []string
	// noTagDelete refuses every DELETE of a manifest by tag as
	// distribution 2.8 (Debian's docker-registry) does: 400 DIGEST_INVALID.
	noTagDelete bool
}

func (f *faulty) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	_, tag, isManifest := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/manifests/")
	f.mu.Lock()
	if isManifest && r.Method == http.MethodPut {
		f.puts++
		f.order = append(f.order, tag)
	}
	if isManifest && r.Method == http.MethodDelete && f.noTagDelete && !strings.HasPrefix(tag, "sha256:") {
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}`)
		return
	}
	var hit *fault
	for i, ft := range f.faults {
		read := ft.method == "read" && (r.Method == http.MethodGet || r.Method == http.MethodHead)
		if isManifest && ft.tag == tag && (read || ft.method == r.Method) {
			hit = &f.faults[i]
			f.hits[r.Method+" "+tag]++
		}
	}
	f.mu.Unlock()
	switch {
	case hit == nil || !isManifest:
		f.next.ServeHTTP(w, r)
	case hit.hang:
		select { // until the client's deadline cancels the request
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	case hit.code != "":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(hit.status)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected"}]}`, hit.code)
	default:
		w.WriteHeader(hit.status)
	}
}

// MoveTags against a registry that fails in the ways real ones do: the
// state after each row is read back tag by tag.
func TestMoveTagsAllOrNone(t *testing.T) {
	// The Client retries 5xx: keep its backoff short here.
	saved := retryBackoff
	retryBackoff = remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}
	t.Cleanup(func() { retryBackoff = saved })

	const old, fresh, absent = "old", "new", ""
	tests := []struct {
		name    string
		before  map[string]string // tag → old or absent
		targets []string          // tags, or "@old" for the old image's digest
		seen    map[string]string // tag → old/new/absent; nil: no check
		faults  []fault
		after   map[string]string
		wantErr []string // substrings; nil: no error
		is      error
		code    int
		noPut   bool // nothing may have been written
		onePut  bool // exactly one manifest write
	}{
		{name: "a tag already on the target is not written again", before: map[string]string{"a": fresh, "b": old}, targets: []string{"a", "b"},
			seen: map[string]string{"a": fresh, "b": old}, after: map[string]string{"a": fresh, "b": fresh}, onePut: true},
		{name: "a tag moved onto the target since inspection still stops the move", before: map[string]string{"a": fresh, "b": old}, targets: []string{"a", "b"},
			seen: map[string]string{"a": old, "b": old}, after: map[string]string{"a": fresh, "b": old},
			wantErr: []string{"app:a", "nothing was moved"}, is: ErrMovedSinceInspection, noPut: true},
		{name: "all new tags move", targets: []string{"a", "b"},
			after: map[string]string{"a": fresh, "b": fresh}},
		{name: "existing tags move", before: map[string]string{"a": old, "b": old}, targets: []string{"a", "b"},
			seen: map[string]string{"a": old, "b": old}, after: map[string]string{"a": fresh, "b": fresh}},
		{name: "a tag moved since inspection: nothing moves", before: map[string]string{"a": old, "b": old}, targets: []string{"a", "b"},
			seen: map[string]string{"a": old, "b": absent}, after: map[string]string{"a": old, "b": old},
			wantErr: []string{"app:b", "nothing was moved"}, is: ErrMovedSinceInspection, noPut: true},
		{name: "read 401 aborts before any move", before: map[string]string{"a": old}, targets: []string{"a", "b"},
			faults: []fault{{method: "read", tag: "b", status: http.StatusUnauthorized}},
			after:  map[string]string{"a": old, "b": absent}, wantErr: []string{"app:b", "nothing was moved"}, code: exit.RegistryAuth, noPut: true},
		{name: "read 5xx aborts before any move", before: map[string]string{"a": old, "b": old}, targets: []string{"a", "b"},
			faults: []fault{{method: "read", tag: "b", status: http.StatusInternalServerError}},
			after:  map[string]string{"a": old, "b": old}, wantErr: []string{"app:b", "500", "nothing was moved"}, noPut: true},
		{name: "read timeout aborts before any move", before: map[string]string{"a": old}, targets: []string{"a", "b"},
			faults: []fault{{method: "read", tag: "b", hang: true}},
			after:  map[string]string{"a": old, "b": absent}, wantErr: []string{"app:b", "nothing was moved"}, code: exit.RegistryUnreachable, noPut: true},
		{name: "404 counts as absent", before: map[string]string{"a": old}, targets: []string{"a", "b"},
			faults: []fault{{method: "read", tag: "b", status: http.StatusNotFound}},
			seen:   map[string]string{"a": old, "b": absent}, after: map[string]string{"a": fresh, "b": fresh}},
		{name: "failed move of an existing tag puts back the moved one before any tag is created", before: map[string]string{"a": old, "c": old},
			targets: []string{"a", "b", "c"}, faults: []fault{{method: http.MethodPut, tag: "c", status: http.StatusInternalServerError}},
			after: map[string]string{"a": old, "b": absent, "c": old}, wantErr: []string{"app:c", "tags already moved were put back: ", "/team/app:a)"}},
		{name: "failed creation puts back the moved tag and deletes the created one", before: map[string]string{"a": old},
			targets: []string{"b", "a", "c"}, faults: []fault{{method: http.MethodPut, tag: "c", status: http.StatusInternalServerError}},
			after: map[string]string{"a": old, "b": absent, "c": absent}, wantErr: []string{"app:c", "tags already moved were put back", "app:a", "app:b"}},
		{name: "failed move where DELETE is refused names the tag left behind", before: map[string]string{"a": old},
			targets: []string{"a", "b", "c"}, faults: []fault{{method: http.MethodPut, tag: "c", status: http.StatusInternalServerError},
				{method: http.MethodDelete, tag: "b", status: http.StatusMethodNotAllowed, code: "UNSUPPORTED"}},
			after: map[string]string{"a": old, "b": fresh, "c": absent}, wantErr: []string{"app:c", "app:b did not exist before and could not be deleted", "refuses to delete"}},
		{name: "a digest target is refused before any move", before: map[string]string{"a": old}, targets: []string{"a", "@old"},
			after: map[string]string{"a": old, "latest": absent}, wantErr: []string{"@sha256:", "nothing was moved"}, is: ErrNotATag, code: exit.Usage, noPut: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &faulty{next: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))), hits: map[string]int{}}
			srv := httptest.NewServer(f)
			defer srv.Close()
			c, err := New(Options{Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			repo, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/team/app")
			digests := map[string]string{absent: absent}
			imgs := map[string]remote.Taggable{}
			for _, v := range []string{old, fresh} {
				img, _ := random.Image(64, 1)
				d, _ := img.Digest()
				digests[v], imgs[v] = d.String(), img
				if err := c.Write(ctx, repo.Digest(d.String()), img); err != nil {
					t.Fatal(err)
				}
			}
			for tag, v := range tt.before {
				if err := c.Tag(ctx, repo.Tag(tag), imgs[v]); err != nil {
					t.Fatal(err)
				}
			}
			var targets []name.Reference
			for _, tag := range tt.targets {
				if d, ok := strings.CutPrefix(tag, "@"); ok {
					targets = append(targets, repo.Digest(digests[d]))
				} else {
					targets = append(targets, repo.Tag(tag))
				}
			}
			var seen map[string]string
			if tt.seen != nil {
				seen = map[string]string{}
				for tag, v := range tt.seen {
					seen[repo.Tag(tag).String()] = digests[v]
				}
			}
			f.mu.Lock()
			f.faults, f.puts = tt.faults, 0
			f.mu.Unlock()

			got, err := c.MoveTags(ctx, targets, imgs[fresh], seen)

			f.mu.Lock()
			f.faults = nil
			puts, hits := f.puts, f.hits
			f.mu.Unlock()
			t.Logf("err: %v; faults hit: %v", err, hits)
			checkMoveErr(t, err, tt.wantErr, tt.is, tt.code)
			if err == nil && len(got) != len(targets) {
				t.Errorf("moved %v, want %d tags", got, len(targets))
			}
			if tt.noPut && puts != 0 {
				t.Errorf("%d manifest writes, want none", puts)
			}
			if tt.onePut && puts != 1 {
				t.Errorf("%d manifest writes, want 1", puts)
			}
			for tag, v := range tt.after {
				if now := headOrAbsent(t, c, repo.Tag(tag)); now != digests[v] {
					t.Errorf("%s points at %s, want %s (%s)", tag, orAbsent(now), v, orAbsent(digests[v]))
				}
			}
		})
	}
}

func checkMoveErr(t *testing.T, err error, want []string, is error, code int) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want one containing %q", want)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
	if is != nil && !errors.Is(err, is) {
		t.Errorf("error %q is not %v", err, is)
	}
	if code != 0 && exit.Code(err) != code {
		t.Errorf("exit code %d, want %d", exit.Code(err), code)
	}
}

func headOrAbsent(t *testing.T, c *Client, tag name.Tag) string {
	t.Helper()
	d, err := c.Head(context.Background(), tag)
	if exit.Code(err) == exit.ImageNotFound {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return d.Digest.String()
}

// On a registry that cannot delete tags (distribution 2.8 answers
// DIGEST_INVALID), every existing tag moves before any tag is created,
// so a failed move among existing tags is fully undone with PUTs; a
// failure while creating says which created tag could not be undone.
func TestMoveTagsCreatesNewTagsLastWhereTagsCannotBeDeleted(t *testing.T) {
	saved := retryBackoff
	retryBackoff = remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 3}
	t.Cleanup(func() { retryBackoff = saved })
	for _, tt := range []struct {
		name      string
		failOn    string
		wantOrder string
		wantErr   []string
		after     map[string]bool // tag → on the new manifest
	}{
		{name: "all move", wantOrder: "old1 old2 new1 new2", after: map[string]bool{"old1": true, "old2": true, "new1": true, "new2": true}},
		{name: "an existing tag fails: nothing was created, all put back", failOn: "old2", wantOrder: "old1 old2 old1",
			wantErr: []string{"app:old2", "put back: ", "/team/app:old1)"}, after: map[string]bool{}},
		{name: "a new tag fails: the created one is named as not undone", failOn: "new2", wantOrder: "old1 old2 new1 new2 old1 old2",
			wantErr: []string{"app:new2", "app:new1 did not exist before and could not be deleted (not undone", "refuses to delete", "DIGEST_INVALID"},
			after:   map[string]bool{"new1": true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := &faulty{next: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))), hits: map[string]int{}, noTagDelete: true}
			srv := httptest.NewServer(f)
			defer srv.Close()
			c, err := New(Options{Timeout: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			repo, _ := name.NewRepository(strings.TrimPrefix(srv.URL, "http://") + "/team/app")
			oldImg, _ := random.Image(64, 1)
			newImg, _ := random.Image(64, 1)
			for _, img := range []remote.Taggable{oldImg, newImg} {
				d, _ := img.(interface{ Digest() (v1.Hash, error) }).Digest()
				if err := c.Put(ctx, repo.Digest(d.String()), img); err != nil {
					t.Fatal(err)
				}
			}
			for _, tag := range []string{"old1", "old2"} {
				if err := c.Tag(ctx, repo.Tag(tag), oldImg); err != nil {
					t.Fatal(err)
				}
			}
			f.mu.Lock()
			f.order = nil
			if tt.failOn != "" {
				f.faults = []fault{{method: http.MethodPut, tag: tt.failOn, status: http.StatusForbidden, code: "DENIED"}}
			}
			f.mu.Unlock()
			// New tags first in the list: the order is MoveTags' own.
			var targets []name.Reference
			for _, tag := range []string{"new1", "old1", "new2", "old2"} {
				targets = append(targets, repo.Tag(tag))
			}
			_, err = c.MoveTags(ctx, targets, newImg, nil)
			f.mu.Lock()
			f.faults = nil
			order := strings.Join(f.order, " ")
			f.mu.Unlock()
			t.Logf("err: %v", err)
			checkMoveErr(t, err, tt.wantErr, nil, 0)
			if order != tt.wantOrder {
				t.Errorf("tags written in the order %q, want %q", order, tt.wantOrder)
			}
			nd, _ := newImg.Digest()
			for _, tag := range []string{"new1", "old1", "new2", "old2"} {
				if on := headOrAbsent(t, c, repo.Tag(tag)) == nd.String(); on != tt.after[tag] {
					t.Errorf("%s on the new manifest: %v, want %v", tag, on, tt.after[tag])
				}
			}
		})
	}
}
