#!/usr/bin/env bash
# Make sure the UI test can run: Debian's chromium and the pinned playwright-core in tests/browser.
#
#   bash scripts/browser_deps.sh
#
# Installs only what is missing (chromium with apt-get, node/npm with apt-get, node modules with
# `npm ci` from package-lock.json), prints nothing when everything is already there, and exits
# non-zero with one line saying what could not be had. Never downloads a browser through npm:
# playwright-core drives the system's /usr/bin/chromium.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BROWSER_DIR="$ROOT/tests/browser"
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
MIN_NODE_MAJOR=20  # playwright-core's own engines field

die() { echo "browser_deps: $*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo -n "$@"
  else return 1
  fi
}

apt_updated=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  if [ "$apt_updated" -eq 0 ]; then
    as_root apt-get update -qq >/dev/null || return 1
    apt_updated=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ ! -x "$CHROMIUM" ]; then
  echo "browser_deps: installing chromium with apt-get" >&2
  apt_install chromium \
    || die "$CHROMIUM is missing and apt-get could not install chromium (needs root or passwordless sudo)"
  [ -x "$CHROMIUM" ] || die "chromium installed but $CHROMIUM is still missing"
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "browser_deps: installing nodejs and npm with apt-get" >&2
  apt_install nodejs npm || die "node/npm are missing and apt-get could not install them"
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge "$MIN_NODE_MAJOR" ] \
  || die "node $(node --version) is too old: playwright-core needs node >= $MIN_NODE_MAJOR"

# Installed = the playwright-core version in node_modules is the one package-lock.json pins.
installed_matches_lock() {
  (cd "$BROWSER_DIR" && node -e '
    const lock = require("./package-lock.json").packages["node_modules/playwright-core"].version;
    const have = require("./node_modules/playwright-core/package.json").version;
    process.exit(lock === have ? 0 : 1);
  ' 2>/dev/null)
}
if ! installed_matches_lock; then
  echo "browser_deps: npm ci in tests/browser" >&2
  (cd "$BROWSER_DIR" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >/dev/null) \
    || die "npm ci failed in $BROWSER_DIR (is the npm registry reachable?)"
  installed_matches_lock || die "npm ci ran but playwright-core in node_modules does not match package-lock.json"
fi
