#!/bin/sh
# Run a Makefile target on a fresh Debian 12 machine (as root): installs `make` first if the
# machine has none, then hands over to the Makefile, which installs everything else.
set -eu
cd "$(dirname "$0")"
if ! command -v make >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q && apt-get install -y -q --no-install-recommends make
fi
exec make "$@"
