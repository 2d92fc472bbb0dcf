#!/bin/sh
# The bundled example app: the `shell` buildpack runs it as the `web`
# process. GREETING comes from the build env (--env GREETING=...); the base
# version comes from the run image, so a rebase shows up here.
echo "Hello from cipack! GREETING=${GREETING:-unset}"
echo "base: $(cat /etc/cipack-base-version)"
