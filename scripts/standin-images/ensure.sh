#!/usr/bin/env bash
# Print the images docker-compose.yaml should run, as .env lines:
#   AIRFLOW_BASE_IMAGE=...   (FROM of ./Dockerfile)
#   POSTGRES_IMAGE=...
#   REDIS_IMAGE=...
#   DEBIAN_IMAGE=...         (FROM of docker/object-store/Dockerfile: the S3 server's image)
# Each is the real image when it is present or `docker pull` gets it; otherwise a stand-in built
# here from Debian packages and PyPI (recipes beside this script; how they differ: README.md).
# Stand-ins are tagged by a hash of their recipe, so they are built once per machine and rebuilt
# only when the recipe (or, for Airflow, requirements.txt) changes.
#
#   scripts/standin-images/ensure.sh            # auto: real image if it can be had, else stand-in
#   TAXIFLOW_STANDIN=always scripts/standin-images/ensure.sh   # never try a registry
#   TAXIFLOW_STANDIN=never  ...                 # real images or fail
#
# Extra CA certificates for pip inside the stand-in build (an HTTPS-intercepting proxy):
# TAXIFLOW_EXTRA_CA_DIR (default /usr/local/share/ca-certificates, the host's own extra CAs).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MODE="${TAXIFLOW_STANDIN:-auto}"
EXTRA_CA_DIR="${TAXIFLOW_EXTRA_CA_DIR:-/usr/local/share/ca-certificates}"
PULL_TIMEOUT="${TAXIFLOW_PULL_TIMEOUT:-120}"
export DOCKER_BUILDKIT=0  # Debian's docker.io has no buildx; the classic builder is enough here

log() { echo "standin: $*" >&2; }

recipe_hash() {  # files... -> 12 hex digits over their names and contents
  local file
  for file in "$@"; do
    if [[ -d "$file" ]]; then
      find "$file" -type f | LC_ALL=C sort | while read -r f; do printf '%s\n' "${f#"$HERE"/}"; cat "$f"; done
    else
      printf '%s\n' "${file#"$ROOT"/}"; cat "$file"
    fi
  done | sha256sum | cut -c1-12
}

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

real_image() {  # try the registry; 0 if the real image is here afterwards
  [[ "$MODE" == "always" ]] && return 1
  have_image "$1" && return 0
  log "trying docker pull $1"
  if timeout "$PULL_TIMEOUT" docker pull --quiet "$1" >/dev/null 2>&1; then return 0; fi
  [[ "$MODE" == "never" ]] && { log "cannot pull $1 and TAXIFLOW_STANDIN=never"; exit 1; }
  log "no registry answers for $1: using a stand-in"
  return 1
}

BASE_TAG="taxiflow-standin/debian:bookworm-$(recipe_hash "$HERE/base.sh")"
ensure_base() {
  have_image "$BASE_TAG" || bash "$HERE/base.sh" "$BASE_TAG"
}

build_standin() {  # name tag [extra files for the context...]
  local name="$1" tag="$2"; shift 2
  if have_image "$tag"; then log "reusing $tag"; return 0; fi
  ensure_base
  local context start
  context="$(mktemp -d /tmp/taxiflow-standin-context.XXXXXX)"
  cp -a "$HERE/$name/." "$context/"
  mkdir -p "$context/extra-ca"
  if compgen -G "$EXTRA_CA_DIR/*.crt" >/dev/null; then cp "$EXTRA_CA_DIR"/*.crt "$context/extra-ca/"; fi
  for extra in "$@"; do cp "$extra" "$context/"; done
  log "building $tag (airflow: about 4 minutes on 2 cores)"
  start=$SECONDS
  if ! docker build --quiet --build-arg "BASE_IMAGE=$BASE_TAG" -t "$tag" "$context" \
       >/dev/null 2>"$context.log"; then
    cat "$context.log" >&2; rm -rf "$context" "$context.log"; log "building $tag failed"; exit 1
  fi
  rm -f "$context.log"
  rm -rf "$context"
  log "built $tag in $((SECONDS - start)) s"
}

resolve() {  # VAR real-image name [extra files...]
  local var="$1" real="$2" name="$3"; shift 3
  if real_image "$real"; then echo "$var=$real"; return 0; fi
  local constraints=()
  if [[ "$name" == "airflow" ]]; then
    constraints=("$ROOT/requirements.txt")
  fi
  local tag="taxiflow-standin/$name:${real##*:}-$(recipe_hash "$HERE/base.sh" "$HERE/$name" "${constraints[@]}")"
  local extra=()
  if [[ "$name" == "airflow" ]]; then
    local tmp; tmp="$(mktemp -d)"; cp "$ROOT/requirements.txt" "$tmp/constraints.txt"; extra=("$tmp/constraints.txt")
  fi
  build_standin "$name" "$tag" "${extra[@]}"
  echo "$var=$tag"
}

resolve POSTGRES_IMAGE postgres:16 postgres
resolve REDIS_IMAGE redis:7.2-bookworm redis
resolve AIRFLOW_BASE_IMAGE apache/airflow:3.3.2-python3.11 airflow
# Debian for the object store's image: debian:bookworm-slim, or the stand-in base itself.
if real_image debian:bookworm-slim; then
  echo "DEBIAN_IMAGE=debian:bookworm-slim"
else
  ensure_base
  echo "DEBIAN_IMAGE=$BASE_TAG"
fi
