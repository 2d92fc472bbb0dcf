// Package e2e holds cipack's end-to-end tests and benchmarks. They run the
// real cipack binary against the real lifecycle (built from the pinned
// module), a real registry on 127.0.0.1 and a builder made from
// examples/buildpacks, then run the built images without Docker.
package e2e
