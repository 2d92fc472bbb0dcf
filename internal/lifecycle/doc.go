// Package lifecycle drives the Cloud Native Buildpacks lifecycle that a
// builder ships under /cnb/lifecycle: it finds the binaries, negotiates the
// platform API, plans the argv and environment of a phase, runs it with its
// logs streamed and timed per phase, maps its exit codes to errors that say
// what to fix, and reads report.toml.
//
// Planning is pure (Plan* functions, table-tested); running goes through
// the small Runner seam so tests and the benchmark drive the same code.
package lifecycle
