// Package cnb is cipack's knowledge of the Cloud Native Buildpacks specs,
// in one place and on top of the lifecycle's own exports: the image and
// builder labels and their types (the lifecycle's platform/files types
// underneath), the platform API versions cipack speaks and how one is
// negotiated with a builder (the lifecycle's api package), and what each
// lifecycle exit code means (keyed on the lifecycle's own constants).
//
// Every decoder of a CNB label in cipack goes through this package, so a
// spec change is made once.
package cnb
