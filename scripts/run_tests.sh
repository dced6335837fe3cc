#!/usr/bin/env bash
# The test run of `make test`: the docker compose tier (marker compose: tests/compose/ and the compose
# drills in tests/drills/) beside everything else, so the whole suite fits its 30-minute budget on a
# 2-core machine.
#
#   scripts/run_tests.sh PYTHON MARKERS [pytest args...]
#
# MARKERS is a pytest -m expression ("" = everything). When it selects the compose tier, the tier
# runs in the background (its output in test-results/compose-tier.log, printed when it ends) while
# a second pytest runs the rest in the foreground: the tier mostly waits on containers, the rest
# mostly on live Airflow processes. The run fails if either fails; each pytest runs only when its
# selection holds tests (never pytest's exit 5, "no tests collected"). Each pytest ends its output with
# the 30 slowest phases (--durations=30: setup, call, teardown) and the slowest modules (wall time, from
# tests/support/module_times.py), so every CI log shows where the time went.
set -uo pipefail

PYTHON="$1"; MARKERS="$2"; shift 2
cd "$(dirname "$0")/.."
mkdir -p test-results

combine() {  # the -m expression for "MARKERS and PART"
  if [ -z "$MARKERS" ]; then echo "$1"; else echo "($MARKERS) and ($1)"; fi
}

selects_tests() {  # does `pytest -m EXPR` collect anything?
  "$PYTHON" -m pytest -q --collect-only -m "$1" -p no:cacheprovider >/dev/null 2>&1
}

TIER="$(combine compose)"
REST="$(combine "not compose")"
TIER_PID=""
TIER_LOG=test-results/compose-tier.log
stop_tier() {  # on Ctrl-C or an error: interrupt the tier's pytest, which then runs `down -v`
  if [ -n "$TIER_PID" ] && kill -0 "$TIER_PID" 2>/dev/null; then
    kill -INT "$TIER_PID" 2>/dev/null
    wait "$TIER_PID" 2>/dev/null
  fi
}
trap 'stop_tier; exit 130' INT TERM

if selects_tests "$TIER"; then
  echo "run_tests: the compose tier runs in the background; its log: $TIER_LOG"
  "$PYTHON" -m pytest -m "$TIER" --durations=30 "$@" >"$TIER_LOG" 2>&1 </dev/null &
  TIER_PID=$!
fi

REST_STATUS=0
if selects_tests "$REST"; then
  "$PYTHON" -m pytest -m "$REST" --durations=30 "$@"
  REST_STATUS=$?
fi

TIER_STATUS=0
if [ -n "$TIER_PID" ]; then
  wait "$TIER_PID"
  TIER_STATUS=$?
  echo "================ compose tier (marker compose, $TIER_LOG) ================"
  cat "$TIER_LOG"
fi

if [ -z "$TIER_PID" ] && ! selects_tests "$REST"; then
  echo "run_tests: no test matches -m '$MARKERS'" >&2
  exit 5
fi
echo "run_tests: rest exit $REST_STATUS, compose tier exit $TIER_STATUS"
[ "$REST_STATUS" -eq 0 ] && [ "$TIER_STATUS" -eq 0 ]
