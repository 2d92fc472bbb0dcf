package ci

import "sort"

// taskParams names cipack's inputs as the Tekton Tasks (tekton/) call them.
var taskParams = map[string]string{
	"--image":              "IMAGE",
	"--tag":                "ADDITIONAL_TAGS",
	"--builder":            "BUILDER_IMAGE",
	"--path":               "SOURCE_SUBPATH",
	"--env":                "ENV_VARS",
	"--run-image":          "RUN_IMAGE",
	"--cache-image":        "CACHE_IMAGE",
	"--process-type":       "PROCESS_TYPE",
	"--platform-api":       "PLATFORM_API",
	"--config":             "FLEET_FILE",
	"--dry-run":            "DRY_RUN",
	"--jobs":               "JOBS",
	"--source":             "SOURCES",
	"run image":            "RUN_IMAGE",
	"lifecycle":            "BUILDER_IMAGE",
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
}

// actionInputs names cipack's inputs as the GitHub Actions (action.yml,
// action/rebase/action.yml) call them.
var actionInputs = map[string]string{
	"--image":        "image",
	"--tag":          "tags",
	"--path":         "path",
	"--env":          "env",
	"--env-file":     "env-file",
	"--run-image":    "run-image",
	"--cache-image":  "cache-image",
	"--process-type": "process-type",
	"--platform-api": "platform-api",
	"--builder":      "builder",
	"--config":       "config",
	"--jobs":         "jobs",
	"--source":       "sources",
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
