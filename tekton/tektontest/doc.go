// Package tektontest tests cipack's Tekton Tasks and examples with Tekton's
// own code (tektoncd/pipeline v1.15.0): strict decoding into the v1 types,
// SetDefaults and Validate, and parameter, workspace and result
// substitution; the rendered steps then run locally, against the real
// lifecycle and a registry on 127.0.0.1. Tekton's own code also measures
// the rebase step's termination message (pkg/entrypoint, pkg/termination),
// renders the Tasks' pods (pkg/pod) for the Pod Security Admission's
// restricted policy, and resolves the Tasks from the OCI bundle the release
// pushes (the bundles resolver, pkg/remote/oci; the bundle is made by
// package bundle and cmd/tekton-bundle, `make tekton-bundle`). It is a
// separate module so that Tekton's dependencies stay out of cipack's go.mod.
package tektontest
