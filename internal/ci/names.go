package ci

import "sort"

// taskParams names cipack's inputs as the Tekton Tasks (tekton/) call them.
var taskParams = map[string]string{
	"--image":              "IMAGE",
	"--tag":                "ADDITIONAL_TAGS",
	"--builder":            "BUILDER_IMAGE",
	"--path":               "SOURCE_SUBPATH",
	"--env":                "ENV_VARS",
	"--buildpack":          "BUILDPACKS",
	"--run-image":          "RUN_IMAGE",
	"--cache-image":        "CACHE_IMAGE",
	"--process-type":       "PROCESS_TYPE",
	"--platform-api":       "PLATFORM_API",
	"--config":             "FLEET_FILE",
	"--dry-run":            "DRY_RUN",
	"--jobs":               "JOBS",
	"--source":             "SOURCES",
	"--source-repository":  "SOURCE_URL",
	"--source-commit":      "SOURCE_REVISION",
	"--source-root":        "source workspace",
	"--any-source":         "ANY_SOURCE",
	"--promote-digest":     "PROMOTE_DIGEST",
	"registry credentials": "dockerconfig workspace",
}

// taskResults maps cipack's generic output names to the Tasks' results.
var taskResults = map[string]string{
	"image":      "IMAGE_URL",
	"digest":     "IMAGE_DIGEST",
	"image-ref":  "IMAGE_REF",
	"up-to-date": "UP_TO_DATE",
	"rebase":     "REBASED",
	"rebuild":    "REBUILD",
	"skipped":    "SKIPPED",
	"error":      "FAILED",
	"moved":      "MOVED_DIGESTS",
	"images":     "IMAGES",
	// The report's own digest: a staged plan's, checked by the promote.
	"report-digest": "REPORT_DIGEST",
}

// actionInputs names cipack's inputs as the GitHub Actions (action.yml,
// action/rebase/action.yml) call them.
var actionInputs = map[string]string{
	"--image":             "image",
	"--tag":               "tags",
	"--path":              "path",
	"--env":               "env",
	"--env-file":          "env-file",
	"--buildpack":         "buildpacks",
	"--exec-env":          "exec-env",
	"--skip-unchanged":    "skip-unchanged",
	"--run-image":         "run-image",
	"--cache-image":       "cache-image",
	"--process-type":      "process-type",
	"--platform-api":      "platform-api",
	"--builder":           "builder",
	"--network":           "network",
	"--trust-builder":     "trust-builder",
	"--config":            "config",
	"--jobs":              "jobs",
	"--shard":             "shard",
	"--run-image-changed": "run-image-changed",
	"--stage":             "stage",
	"--promote":           "promote",
	"--promote-digest":    "promote-digest",
	"--source":            "sources",
	"--sbom-dir":          "sbom-dir",
	"--any-source":        "any-source",
	"--dry-run":           "dry-run",
	"--exit-code":         "exit-code",
	"IMAGE":               "images",
}

// ActionInputFor and TaskParamFor name an error subject as the actions and
// the Tasks call it; Subjects lists every subject that has a name. Tests
// hold these tables to the action and Task files.
func ActionInputFor(subject string) (string, bool) { v, ok := actionInputs[subject]; return v, ok }

func TaskParamFor(subject string) (string, bool) { v, ok := taskParams[subject]; return v, ok }

func Subjects() []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range []map[string]string{actionInputs, taskParams} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
