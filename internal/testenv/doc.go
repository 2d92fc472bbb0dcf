// Package testenv makes the real parts that cipack's end-to-end tests, the
// demo and the benchmarks run against: lifecycle binaries built from the
// pinned module, a registry server on 127.0.0.1, a run image, a builder
// directory with two small buildpacks, a way to run a command as if inside
// the builder image, and a way to run a built image without Docker.
//
// It is test infrastructure: the cipack binary never imports it.
package testenv
