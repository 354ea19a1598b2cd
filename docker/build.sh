#!/usr/bin/env bash
# build.sh - builds the image of one connector with the version CMake knows.
#
#   docker/build.sh crm360|shops [image-name]     (default: local/destination-<connector>)
#
# The version is read from project(... VERSION x.y.z) in CMakeLists.txt, the
# one place it is written; the image is tagged <image-name>:<version> and its
# io.airbyte.name / io.airbyte.version labels say the same. Extra docker
# build arguments may follow in DOCKER_BUILD_ARGS (e.g. --platform linux/amd64).
set -euo pipefail
cd "$(dirname "$0")/.."
connector=${1:?usage: docker/build.sh crm360|shops [image-name]}
[ -f "destinations/${connector}/CMakeLists.txt" ] || { echo "no connector '${connector}'" >&2; exit 2; }
name=${2:-local/destination-${connector}}
version=$(sed -nE 's/^project\([^)]*VERSION ([0-9][0-9.]*).*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "no VERSION in project() of CMakeLists.txt" >&2; exit 1; }
# shellcheck disable=SC2086
exec docker build -f docker/Dockerfile --target runtime \
  --build-arg CONNECTOR="$connector" --build-arg VERSION="$version" --build-arg IMAGE_NAME="$name" \
  -t "$name:$version" ${DOCKER_BUILD_ARGS:-} .
