#!/usr/bin/env bash
# Stand-in base image: a minimal Debian bookworm root file system, debootstrapped from the Debian
# mirror this machine's apt already uses, imported as a Docker image.
#
#   scripts/standin-images/base.sh TAG
#
# Needs root and debootstrap (apt-get install debootstrap). About 25 s and 130 MB.
set -euo pipefail
TAG="$1"
MIRROR="${TAXIFLOW_DEBIAN_MIRROR:-}"
if [[ -z "$MIRROR" ]]; then
  # The first Debian mirror apt knows: deb822 sources (URIs:) or one-line sources (deb URL suite).
  MIRROR="$(grep -rhoE '^(URIs:[[:space:]]*|deb[[:space:]]+)https?://[^[:space:]]+/debian/?([[:space:]]|$)' \
              /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null \
            | grep -oE 'https?://[^[:space:]]+' | head -1 || true)"
  MIRROR="${MIRROR:-http://deb.debian.org/debian}"
fi
ROOTFS="$(mktemp -d /tmp/taxiflow-standin-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
echo "standin base: debootstrap --variant=minbase bookworm from $MIRROR" >&2
debootstrap --variant=minbase bookworm "$ROOTFS" "$MIRROR" >/dev/null
# apt inside the image uses the same mirror over plain http; no recommends, keep images small.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$MIRROR" "$MIRROR" > "$ROOTFS/etc/apt/sources.list"
printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' > "$ROOTFS/etc/apt/apt.conf.d/90taxiflow"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import - "$TAG" >/dev/null
echo "standin base: imported $TAG" >&2
