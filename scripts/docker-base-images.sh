#!/usr/bin/env bash
# Makes sure the base images named on the command line exist in the Docker engine.
# Usage: scripts/docker-base-images.sh NAME...   e.g. python:3.11-slim redis:7.2 prom/prometheus:v2.53.3
#
# For each NAME: nothing if the engine has it; else `docker pull NAME`; else (no registry
# reachable, as on the CI machines) a local stand-in is built under that very name from a
# Debian bookworm minbase rootfs (debootstrap, run once and cached as a tarball in
# $QUEUECTL_BASE_CACHE) plus scripts/base-images/<kind>.Dockerfile. The stand-ins carry the
# host's CA certificates (/usr/local/share/ca-certificates/*.crt), which pip and apt need
# behind an intercepting proxy. Stand-ins are built in parallel.
set -euo pipefail
here=$(cd -P "$(dirname "$0")" && pwd)
docker=${DOCKER:-docker}
cache=${QUEUECTL_BASE_CACHE:-/var/cache/queuectl-base}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
debian=queuectl-local/debian:bookworm

kind_of() {
  case "$1" in
    python:3.11*) echo python ;;
    redis:*) echo redis ;;
    prom/prometheus:*) echo prometheus ;;
    *) return 1 ;;
  esac
}

# What makes debian:bookworm-slim (the base of python:3.11-slim) slim: apt keeps no
# package caches, and dpkg installs no documentation, manual pages or translations.
slim() {
  cat >"$1/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
Acquire::GzipIndexes "true";
APT
  cat >"$1/etc/dpkg/dpkg.cfg.d/docker-slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
DPKG
  find "$1/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  rm -rf "$1"/usr/share/man/* "$1"/usr/share/info/* "$1"/usr/share/locale/*
}

# The minbase rootfs as an image: debootstrap once, then import the cached tarball.
debian_image() {
  "$docker" image inspect "$debian" >/dev/null 2>&1 && return 0
  local tarball="$cache/bookworm-minbase-slim.tar"
  if [ ! -s "$tarball" ]; then
    command -v debootstrap >/dev/null || { echo "$0: debootstrap is not installed" >&2; exit 1; }
    mkdir -p "$cache"
    local rootfs
    rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
    echo "debootstrap --variant=minbase bookworm (once; cached in $tarball)"
    debootstrap --variant=minbase --include=ca-certificates bookworm "$rootfs" "$mirror" \
      >"$cache/debootstrap.log" 2>&1 || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
    cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" \
      2>/dev/null || true
    # (It warns about the bundle file among the host's certificates: harmless.)
    chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
    # pip trusts its own bundle unless told otherwise; the system one has the host's CAs.
    printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$rootfs/etc/pip.conf"
    # No init in a build: package scripts must not try to start services.
    printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
    chmod +x "$rootfs/usr/sbin/policy-rc.d"
    slim "$rootfs"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
      "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf "$rootfs"
  fi
  "$docker" import "$tarball" "$debian" >/dev/null
}

wanted=()
for name in "$@"; do
  "$docker" image inspect "$name" >/dev/null 2>&1 && continue
  if timeout 60 "$docker" pull -q "$name" >/dev/null 2>&1; then
    echo "pulled $name"
    continue
  fi
  kind_of "$name" >/dev/null || { echo "$0: cannot pull $name and have no local recipe for it" >&2; exit 1; }
  wanted+=("$name")
done
[ ${#wanted[@]} -eq 0 ] && exit 0

debian_image
pids=()
logs=()
for name in "${wanted[@]}"; do
  kind=$(kind_of "$name")
  log=$(mktemp)
  logs+=("$log")
  echo "building local stand-in $name"
  DOCKER_BUILDKIT=1 "$docker" build -q -t "$name" -f "$here/base-images/$kind.Dockerfile" \
    "$here/base-images" >"$log" 2>&1 &
  pids+=($!)
done
status=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    echo "$0: building ${wanted[$i]} failed:" >&2
    tail -20 "${logs[$i]}" >&2
    status=1
  fi
  rm -f "${logs[$i]}"
done
exit "$status"
