#!/usr/bin/env bash
# install-deps.sh - installs the Debian 12 packages needed to build and test.
# Safe to run again: apt-get skips what is already there.
set -euo pipefail

pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev clang-format cppcheck valgrind python3 procps time git openssl
      libcurl4-openssl-dev libyajl-dev libpq-dev libssl-dev libcmocka-dev zlib1g-dev libisal-dev
      postgresql yajl-tools debootstrap)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
