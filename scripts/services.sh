#!/usr/bin/env bash
# Makes sure the local PostgreSQL (127.0.0.1:5432) and Redis (127.0.0.1:6379) the tests use are
# running, starting them when they are installed but stopped. Prints what it did; never fails.
set -u

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if port_open 5432; then
  echo "services: PostgreSQL is up"
elif command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in /etc/postgresql/*; do
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$version")" main start || true
  done
  for _ in $(seq 1 30); do port_open 5432 && break; sleep 0.5; done
  port_open 5432 && echo "services: started PostgreSQL" || echo "services: PostgreSQL did not start"
else
  echo "services: PostgreSQL is not installed; its tests will skip (fail under CI=true)"
fi

if port_open 6379; then
  echo "services: Redis is up"
elif command -v redis-server >/dev/null 2>&1; then
  mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log || true
  for _ in $(seq 1 30); do port_open 6379 && break; sleep 0.5; done
  port_open 6379 && echo "services: started Redis" || echo "services: Redis did not start"
else
  echo "services: Redis is not installed; its tests will skip (fail under CI=true)"
fi
exit 0
