#!/usr/bin/env python3
"""Fail unless every published port in a rendered compose file names the host interface it binds.

    docker compose config --format json | python3 scripts/check_compose_ports.py LABEL

A port written ``8080:8080`` listens on every interface of the host (and Docker's iptables rules
bypass most host firewalls); ``127.0.0.1:8080:8080`` or ``${HOST:-127.0.0.1}:...`` names one.
"""

from __future__ import annotations

import json
import sys


def main() -> int:
    """Check stdin's rendered config; print what is bound where."""
    label = sys.argv[1] if len(sys.argv) > 1 else "compose"
    config = json.load(sys.stdin)
    bound, unbound = [], []
    for name, service in sorted(config["services"].items()):
        for port in service.get("ports", []):
            where = f"{name} {port.get('published')}->{port.get('target')}"
            (bound if port.get("host_ip") else unbound).append(
                f"{where} on {port['host_ip']}" if port.get("host_ip") else where
            )
    if unbound:
        print(f"validate_compose: FAILED ({label}): published on every interface: {unbound}; write "
              "HOST:PORT:CONTAINER_PORT, e.g. ${AIRFLOW_API_HOST:-127.0.0.1}:${AIRFLOW_API_PORT:-8080}:8080",
              file=sys.stderr)
        return 1
    print(f"validate_compose: every published port names its interface ({label}): {bound}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
