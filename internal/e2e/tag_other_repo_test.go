package e2e

import (
	"strings"
	"testing"
)

// A --tag in another repository than --image's (the preflight checks
// push there too): the image lands there as well, in both modes, and
// every tag holds the built digest.
func TestTagInAnotherRepository(t *testing.T) {
	needFixture(t)
	for _, m := range hostileModes() {
		t.Run(m.name, func(t *testing.T) {
			image := fx.Registry.Host + "/records/othertag-" + m.name + ":latest"
			other := fx.Registry.Host + "/records/othertag-elsewhere-" + m.name + ":v1"
			r := m.build(t, image, "--tag", other, "--output", "json")
			if r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, tail(r.stderr, 25))
			}
			d := mustJSON(t, r.stdout).Digest
			for _, ref := range []string{image, other} {
				if got := headOrNone(t, ref); got != d {
					t.Errorf("%s holds %q, want %s", ref, got, d)
				}
			}
			if !strings.HasPrefix(d, "sha256:") {
				t.Errorf("digest %q", d)
			}
		})
	}
}
