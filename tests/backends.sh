#!/usr/bin/env bash
# Run a command with a throw-away PostgreSQL and Redis on loopback, then stop them.
# Usage: tests/backends.sh pytest ...   (sets TEST_DATABASE_URL and TEST_REDIS_URL for it)
# TEST_PG_OPTIONS adds server settings, e.g. "-c shared_buffers=1GB" (the benchmarks' server).
set -euo pipefail

pg_bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
workdir=$(mktemp -d /tmp/crm-backends.XXXXXX)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# Free ports unless given, so two runs on one machine do not collide.
pg_port=${TEST_PG_PORT:-$(free_port)}
redis_port=${TEST_REDIS_PORT:-$(free_port)}

# PostgreSQL refuses to run as root: use the postgres system user then.
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres "$workdir"
  as_pg=(runuser -u postgres --)
fi

cleanup() {
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$workdir/pg" -m immediate stop >/dev/null 2>&1 || true
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$workdir"
}
trap cleanup EXIT

"${as_pg[@]}" "$pg_bin/initdb" -D "$workdir/pg" -U postgres -A trust -E UTF8 --no-locale >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$workdir/pg" -l "$workdir/pg.log" -w start \
  -o "-p $pg_port -k $workdir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 ${TEST_PG_OPTIONS:-}" >/dev/null
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --logfile "$workdir/redis.log" --dir "$workdir" >/dev/null

for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

export TEST_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$pg_port/postgres"
export TEST_REDIS_URL="redis://127.0.0.1:$redis_port"
echo "PostgreSQL on 127.0.0.1:$pg_port, Redis on 127.0.0.1:$redis_port"
"$@"
