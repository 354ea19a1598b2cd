#!/usr/bin/env bash
# build.sh - builds the image of one connector with the version CMake knows.
#
#   docker/build.sh <connector> [image-name]     (default: local/<connector>)
#   docker/build.sh --extra-packages <connector> (prints its extra runtime packages)
#
# <connector>: destination-crm360, destination-shops, source-bling,
# source-postgres (crm360, shops, bling and postgres are short for them).
# The version is read from project(... VERSION x.y.z) in CMakeLists.txt, the
# one place it is written; the image is tagged <image-name>:<version> and its
# io.airbyte.name / io.airbyte.version labels say the same. Extra docker
# build arguments may follow in DOCKER_BUILD_ARGS (e.g. --platform linux/amd64).
set -euo pipefail
cd "$(dirname "$0")/.."

usage="usage: docker/build.sh [--extra-packages] destination-crm360|destination-shops|source-bling|source-postgres [image-name]"

# The connector's full name from a full or short one; its directory must exist.
connector_name() {
  local name=$1
  case "$name" in
    crm360|shops) name=destination-$name ;;
    bling|postgres) name=source-$name ;;
  esac
  case "$name" in
    destination-*) [ -f "destinations/${name#destination-}/CMakeLists.txt" ] ;;
    source-*) [ -f "sources/${name#source-}/CMakeLists.txt" ] ;;
    *) false ;;
  esac || { echo "no connector '$1'" >&2; exit 2; }
  echo "$name"
}

# Runtime packages a connector needs beyond the common ones of the runtime
# stage (integration/test_image_rootfs.py reads this table through
# --extra-packages).
extra_packages() {
  case "$1" in
    source-postgres) echo "libpq5" ;;
    *) echo "" ;;
  esac
}

if [ "${1:-}" = "--extra-packages" ]; then
  connector=$(connector_name "${2:?$usage}")
  extra_packages "$connector"
  exit 0
fi
connector=$(connector_name "${1:?$usage}")
name=${2:-local/${connector}}
version=$(sed -nE 's/^project\([^)]*VERSION ([0-9][0-9.]*).*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "no VERSION in project() of CMakeLists.txt" >&2; exit 1; }
extra=$(extra_packages "$connector")
# shellcheck disable=SC2086
exec docker build -f docker/Dockerfile --target runtime \
  --build-arg CONNECTOR="$connector" --build-arg VERSION="$version" --build-arg IMAGE_NAME="$name" \
  --build-arg EXTRA_PACKAGES="$extra" \
  -t "$name:$version" ${DOCKER_BUILD_ARGS:-} .
