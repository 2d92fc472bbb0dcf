#!/bin/sh
# Gives pull mode's build code a network of its own: cipack runs detect
# and build in a private network namespace through pasta (Debian and
# Ubuntu package passt), else slirp4netns, with no way to the runner's
# loopback services, its abstract unix sockets or the cloud metadata
# endpoint. Without either, cipack falls back to the runner's network and
# warns.
#
# What this does: nothing when pasta is on PATH; on GitHub's hosted
# runners (RUNNER_ENVIRONMENT=github-hosted) it installs passt with apt
# (a few seconds: one small package, no daemon); elsewhere (self-hosted
# runners, other CI) it installs nothing, the runner's packages being
# its owner's choice, and says so. It never fails the step: where the
# archive has no passt (ubuntu-22.04), cipack uses the slirp4netns the
# image ships with podman.
set -u
if command -v pasta >/dev/null 2>&1; then
  echo "cipack: build code's own network through $(command -v pasta)"
  exit 0
fi
if [ "${RUNNER_ENVIRONMENT:-}" != github-hosted ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "cipack: no pasta on this runner: cipack uses slirp4netns if it is installed, else build code shares the runner's network (install the passt package, or set network: host to say you mean it)"
  exit 0
fi
sudo=
[ "$(id -u)" = 0 ] || sudo="sudo -n"
install_passt() { $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends passt >/dev/null 2>&1; }
# The runner's package lists are usually fresh enough; update them only
# when the install cannot find the package.
if install_passt || { $sudo apt-get update -qq >/dev/null 2>&1 && install_passt; }; then
  echo "cipack: installed passt: build code gets a network of its own through $(command -v pasta)"
else
  if command -v slirp4netns >/dev/null 2>&1; then
    echo "cipack: no passt here: build code gets a network of its own through $(command -v slirp4netns)"
  else
    echo "::warning title=cipack network::could not install passt (apt-get install passt): build code will share the runner's network"
  fi
fi
exit 0
