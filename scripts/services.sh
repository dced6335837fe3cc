#!/usr/bin/env bash
# Make sure the PostgreSQL and Redis the production-shape tests use are up on 127.0.0.1.
# Starts them (Debian's packages, as this machine kind provides them) only when they are down.
set -uo pipefail

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "services: starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
if ! port_open 6379; then
  if command -v redis-server >/dev/null 2>&1; then
    echo "services: starting Redis"
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  fi
fi
for i in $(seq 1 30); do
  if port_open 5432 && port_open 6379; then echo "services: PostgreSQL and Redis are up"; exit 0; fi
  sleep 1
done
echo "services: PostgreSQL or Redis not reachable; tests that need them will skip" >&2
exit 0
