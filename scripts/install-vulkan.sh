#!/usr/bin/env bash
# Install Mesa's software Vulkan driver (lavapipe) from Debian bookworm-backports, so that
# onnxruntime-node's WebGPU provider (Dawn) finds an adapter on machines without a GPU.
# Debian 12's own mesa-vulkan-drivers (22.3) is too old for Dawn; 25.x from backports works.
# Idempotent; runs as root (no sudo needed) or through sudo when available.
set -euo pipefail

SOURCE_LINE="deb http://deb.debian.org/debian bookworm-backports main"
SOURCE_FILE=/etc/apt/sources.list.d/bookworm-backports.list

if [ "$(id -u)" -eq 0 ]; then
  as_root() { "$@"; }
elif command -v sudo >/dev/null 2>&1; then
  as_root() { sudo "$@"; }
else
  echo "install-vulkan: needs root (or sudo) to install packages" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-vulkan: apt-get not found; install Mesa >= 24 Vulkan drivers (lavapipe) by hand" >&2
  exit 1
fi

installed_version() {
  dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true
}

version=$(installed_version)
case "$version" in
  2[4-9].*|[3-9][0-9].*)
    echo "install-vulkan: mesa-vulkan-drivers ${version} already installed"
    exit 0
    ;;
esac

if ! grep -qsF "$SOURCE_LINE" /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null; then
  echo "$SOURCE_LINE" | as_root tee "$SOURCE_FILE" >/dev/null
fi
as_root apt-get update -qq
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >/dev/null
echo "install-vulkan: mesa-vulkan-drivers $(installed_version) installed"
