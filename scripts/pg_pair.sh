#!/usr/bin/env bash
# A PostgreSQL 15 primary with a streaming-replication standby, for the failover fault test.
#
#   scripts/pg_pair.sh up DIR             primary on 5451, standby on 5452 (both running)
#   scripts/pg_pair.sh crash DIR          stop the primary at once (pg_ctl stop -m immediate)
#   scripts/pg_pair.sh promote DIR        promote the standby (waits until it takes writes)
#   scripts/pg_pair.sh down DIR           stop whatever still runs and remove DIR
#
# Debian's PostgreSQL 15 binaries, run as the postgres user, data and sockets under DIR
# (created here, owned by postgres): nothing of the cluster of `make services` (5432) is
# touched. The standby is synchronous (synchronous_standby_names, set on the primary once
# the standby is copied, so that the promoted standby does not wait for a standby of its
# own): a commit the primary acknowledged is on the standby too, so promoting it loses
# no acknowledged write.
# Role and database: discogs/discogs, as in `make services`.
set -euo pipefail

BIN=/usr/lib/postgresql/15/bin
PRIMARY_PORT=5451
STANDBY_PORT=5452
ROLE=discogs

# Installs Debian's package when its binaries are missing (`make services` in Docker mode
# does not install them on the machine).
need() {
  [[ -x $1 ]] && return 0
  log "installing $2 from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

log() { echo "[pg_pair] $*" >&2; }
as_pg() { runuser -u postgres -- "$@"; }

primary_sql() {
  as_pg "$BIN/psql" -qX -h "$DIR" -p $PRIMARY_PORT -U postgres -d postgres "$@" >/dev/null
}

pg_start() {
  local data=$1 port=$2 extra=${3:-}
  as_pg "$BIN/pg_ctl" -D "$data" -l "$data.log" -w -t 60 \
    -o "-p $port -k $(dirname "$data") -c listen_addresses=127.0.0.1 $extra" start >/dev/null
}

up() {
  local dir=$1 port
  need "$BIN/initdb" postgresql-15
  DIR=$dir
  for port in $PRIMARY_PORT $STANDBY_PORT; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "port $port is in use (a pair left running? scripts/pg_pair.sh down DIR)"
      exit 1
    fi
  done
  mkdir -p "$dir"
  chown postgres: "$dir"
  chmod 700 "$dir"
  as_pg "$BIN/initdb" -D "$dir/primary" -U postgres -A trust --no-sync >/dev/null
  cat >> "$dir/primary/pg_hba.conf" <<'EOF'
host replication postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 md5
EOF
  pg_start "$dir/primary" $PRIMARY_PORT
  primary_sql -c "CREATE ROLE $ROLE LOGIN PASSWORD '$ROLE'" -c "CREATE DATABASE $ROLE OWNER $ROLE"
  as_pg "$BIN/pg_basebackup" -h 127.0.0.1 -p $PRIMARY_PORT -U postgres -D "$dir/standby" \
    -R -X stream -c fast >/dev/null
  pg_start "$dir/standby" $STANDBY_PORT
  primary_sql -c "ALTER SYSTEM SET synchronous_standby_names = '*'" -c "SELECT pg_reload_conf()"
  log "primary 127.0.0.1:$PRIMARY_PORT, synchronous standby 127.0.0.1:$STANDBY_PORT"
}

crash() { as_pg "$BIN/pg_ctl" -D "$1/primary" -m immediate stop >/dev/null; log "primary stopped"; }

promote() { as_pg "$BIN/pg_ctl" -D "$1/standby" -w -t 60 promote >/dev/null; log "standby promoted"; }

down() {
  local dir=$1 node
  for node in primary standby; do
    if [[ -f "$dir/$node/postmaster.pid" ]]; then
      as_pg "$BIN/pg_ctl" -D "$dir/$node" -m immediate stop >/dev/null 2>&1 || true
    fi
  done
  rm -rf "$dir"
  log "down"
}

case "${1:-}" in
  up) up "${2:?DIR}" ;;
  crash) crash "${2:?DIR}" ;;
  promote) promote "${2:?DIR}" ;;
  down) down "${2:?DIR}" ;;
  *) echo "usage: $0 up|crash|promote|down DIR" >&2; exit 2 ;;
esac
