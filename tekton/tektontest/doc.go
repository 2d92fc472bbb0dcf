// Package tektontest tests cipack's Tekton Tasks and examples with Tekton's
// own code (tektoncd/pipeline v1.15.0): strict decoding into the v1 types,
// SetDefaults and Validate, and parameter, workspace and result
// substitution; the rendered steps then run locally, against the real
// lifecycle and a registry on 127.0.0.1. It is a separate module so that
// Tekton's dependencies stay out of cipack's go.mod.
package tektontest
