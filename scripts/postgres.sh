#!/usr/bin/env bash
# Install (Debian postgresql) and start a local PostgreSQL server with a database for the
# distributed-study tests; prints the URL to export as MIXPREC_TEST_POSTGRES_URL.
set -euo pipefail
DB=mixprec_test
if ! command -v pg_lsclusters >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2
fi
cluster=$(pg_lsclusters --no-header | head -n1)
if [ -z "$cluster" ]; then
  version=$(ls /usr/lib/postgresql | sort -n | tail -n1)
  pg_createcluster "$version" main >&2
  cluster=$(pg_lsclusters --no-header | head -n1)
fi
read -r version name port status _ <<<"$cluster"
if [ "$status" != "online" ]; then
  pg_ctlcluster "$version" "$name" start >&2
fi
as_postgres() { (cd / && runuser -u postgres -- "$@"); }
as_postgres psql -p "$port" -tAc "SELECT 1 FROM pg_roles WHERE rolname='mixprec'" | grep -q 1 \
  || as_postgres psql -p "$port" -qc "CREATE ROLE mixprec LOGIN PASSWORD 'mixprec'" >&2
as_postgres psql -p "$port" -tAc "SELECT 1 FROM pg_database WHERE datname='$DB'" | grep -q 1 \
  || as_postgres createdb -p "$port" -O mixprec "$DB" >&2
echo "postgresql://mixprec:mixprec@localhost:$port/$DB"
