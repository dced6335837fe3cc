#!/usr/bin/env python3
"""Write the docker compose ``.env`` from ``.env.example``, idempotently (``make compose-env``).

    python3 scripts/compose_env.py                       # create .env, or complete an existing one
    python3 scripts/compose_env.py AIRFLOW_API_PORT=8081 # and set these values

- A missing ``.env`` starts as a copy of ``.env.example``; ``AIRFLOW_UID`` becomes your ``id -u``
  (50000, the image's airflow user, when you are root).
- Every REQUIRED secret that is empty gets a freshly generated value; a secret already set is kept,
  so running it again changes nothing (the Fernet key and passwords must never change under a
  running deployment).
- ``KEY=VALUE`` arguments replace that variable's line in place (or append it once).
- A variable written twice (as the old ``echo ... >> .env`` left it) is collapsed to one line holding
  the value compose used (the last one), and the script says so.

Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
IMAGE_USER_UID = "50000"


def _fernet_key() -> str:
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


GENERATORS = {
    "_AIRFLOW_WWW_USER_PASSWORD": lambda: secrets.token_urlsafe(18),
    "POSTGRES_PASSWORD": lambda: secrets.token_hex(16),  # goes into a URL: hex is URL-safe
    "AIRFLOW__CORE__FERNET_KEY": _fernet_key,
    "AIRFLOW__API_AUTH__JWT_SECRET": lambda: secrets.token_hex(32),
    # S3 keys go into a JSON connection (AIRFLOW_CONN_TAXIFLOW_STORAGE): hex needs no escaping
    "TAXIFLOW_S3_ACCESS_KEY": lambda: secrets.token_hex(10),
    "TAXIFLOW_S3_SECRET_KEY": lambda: secrets.token_hex(20),
    # the run-notes user's password, also in a JSON connection (AIRFLOW_CONN_TAXIFLOW_API): hex
    "TAXIFLOW_RUN_NOTES_PASSWORD": lambda: secrets.token_hex(16),
}


def default_uid() -> str:
    """Your uid, so files the containers write in ./logs and ./data are yours; root gets 50000."""
    uid = os.getuid()
    return IMAGE_USER_UID if uid == 0 else str(uid)


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments to a dict; a malformed one is an error naming it."""
    values = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not NAME.match(name):
            raise SystemExit(f"compose_env: {pair!r} is not KEY=VALUE (KEY: letters, digits, _)")
        values[name] = value
    return values


def update_env(text: str, values: dict[str, str]) -> tuple[str, list[str]]:
    """Return ``text`` with ``values`` set in place and duplicates collapsed, plus notes to print."""
    lines = text.splitlines()
    last_index: dict[str, int] = {}
    for index, line in enumerate(lines):
        match = LINE.match(line)
        if match:
            last_index[match.group(1)] = index
    notes, out, seen = [], [], set()
    for index, line in enumerate(lines):
        match = LINE.match(line)
        if not match:
            out.append(line)
            continue
        name = match.group(1)
        if index != last_index[name]:
            notes.append(f"{name} was set more than once; kept the last value (the one compose used)")
            continue
        seen.add(name)
        out.append(f"{name}={values[name]}" if name in values else line)
    for name, value in values.items():
        if name not in seen:
            out.append(f"{name}={value}")
    return "\n".join(out) + "\n", notes


def current_values(text: str) -> dict[str, str]:
    """Variables in an env file's text (the last assignment wins, as in compose)."""
    values = {}
    for line in text.splitlines():
        match = LINE.match(line)
        if match:
            values[match.group(1)] = match.group(2).strip()
    return values


def main(argv: list[str] | None = None) -> int:
    """Create or complete the env file; print what changed."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("assignments", nargs="*", metavar="KEY=VALUE")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env")
    parser.add_argument("--example", type=Path, default=ROOT / ".env.example")
    args = parser.parse_args(argv)
    wanted = parse_assignments(args.assignments)

    created = not args.env_file.exists()
    text = args.example.read_text() if created else args.env_file.read_text()
    present = current_values(text)
    values: dict[str, str] = {}
    if created and "AIRFLOW_UID" not in wanted:
        values["AIRFLOW_UID"] = default_uid()
    for name, generate in GENERATORS.items():
        if not present.get(name) and not wanted.get(name):
            values[name] = generate()
    values.update(wanted)
    new_text, notes = update_env(text, values)
    if new_text != (None if created else text):
        args.env_file.write_text(new_text)
        args.env_file.chmod(0o600)  # it holds the secrets
    for note in notes:
        print(f"compose_env: {note}", file=sys.stderr)
    generated = sorted(set(values) & set(GENERATORS) - set(wanted))
    print(f"compose_env: {'created' if created else 'updated'} {args.env_file}"
          + (f"; generated {', '.join(generated)}" if generated else "; no secret changed"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
