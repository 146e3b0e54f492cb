#!/usr/bin/env bash
# Brings up (or down) the three real servers the tests and `make run` use, all on
# 127.0.0.1, with no Docker engine needed:
#   RabbitMQ   5672 (management 15672)   Debian's rabbitmq-server
#   PostgreSQL 5432                      Debian's postgresql (15), via pg_ctlcluster
#   Neo4j      7687 (HTTP 7474)          5.26 Community jars from Maven Central
# and installs (never starts) Debian's prometheus, whose server and promtool the monitoring
# tests run on ports of their own. RabbitMQ's Prometheus endpoint is on 15692.
# Idempotent: a server already answering is left alone, so a second run takes seconds.
# Where `docker info` answers and SERVICES_USE_DOCKER=1, docker compose starts them instead.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${SERVICES_DIR:-$ROOT/.services}
NEO4J_HOME=$STATE/neo4j
NEO4J_VERSION=$(sed -n 's:.*<neo4j.version>\(.*\)</neo4j.version>.*:\1:p' "$ROOT/services/neo4j/pom.xml")
NEO4J_PASSWORD=${NEO4J_PASSWORD:-discogs-pass}
PG_USER=${POSTGRES_USER:-discogs}
PG_PASSWORD=${POSTGRES_PASSWORD:-discogs}
PG_DB=${POSTGRES_DB:-discogs}
AMQP_USER=${AMQP_USER:-discogs}
AMQP_PASSWORD=${AMQP_PASSWORD:-discogs}

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds or the deadline passes.
wait_for() {
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$what did not become ready within ${limit}s"
    sleep 0.5
  done
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  ((${#missing[@]} == 0)) && return 0
  log "installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# ---------------------------------------------------------------- RabbitMQ
rabbit_up() {
  if rabbitmqctl -q status >/dev/null 2>&1 && rabbit_ready; then
    rabbit_prometheus
    log "rabbitmq already up"; return
  fi
  apt_install rabbitmq-server
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    log "starting rabbitmq"
    rabbitmq-server -detached
  fi
  # await_startup returns at once while the Erlang node is not yet reachable, so poll it.
  wait_for "rabbitmq (see /var/log/rabbitmq)" 120 rabbitmqctl -q await_startup --timeout 5
  rabbitmq-plugins -q enable rabbitmq_management >/dev/null
  if ! rabbitmqctl -q list_users | grep -q "^${AMQP_USER}\b"; then
    rabbitmqctl -q add_user "$AMQP_USER" "$AMQP_PASSWORD" >/dev/null
    rabbitmqctl -q set_user_tags "$AMQP_USER" administrator >/dev/null
    rabbitmqctl -q set_permissions -p / "$AMQP_USER" ".*" ".*" ".*" >/dev/null
  fi
  wait_for "rabbitmq AMQP port" 60 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672'
  wait_for "rabbitmq management" 60 rabbit_ready
  rabbit_prometheus
  log "rabbitmq up on 127.0.0.1:5672"
}
# The broker's own metrics (queue depths, deliveries) for Prometheus, on port 15692.
# Enabling a plugin that is already enabled changes nothing.
rabbit_prometheus() {
  rabbitmq-plugins -q enable rabbitmq_prometheus >/dev/null
  wait_for "rabbitmq prometheus endpoint" 60 bash -c 'exec 3<>/dev/tcp/127.0.0.1/15692'
}
rabbit_ready() { bash -c 'exec 3<>/dev/tcp/127.0.0.1/15672' 2>/dev/null && rabbitmqctl -q list_users 2>/dev/null | grep -q "^${AMQP_USER}\b"; }
rabbit_down() {
  if rabbitmqctl -q status >/dev/null 2>&1; then log "stopping rabbitmq"; rabbitmqctl -q stop >/dev/null 2>&1 || true; fi
}

# -------------------------------------------------------------- PostgreSQL
pg_cluster() { pg_lsclusters -h 2>/dev/null | awk '$3 == 5432 {print $1, $2; exit}'; }
pg_up() {
  apt_install postgresql
  local cluster; cluster=$(pg_cluster)
  [[ -n $cluster ]] || die "no PostgreSQL cluster on port 5432 (pg_lsclusters)"
  # shellcheck disable=SC2086
  set -- $cluster
  if ! pg_ctlcluster "$1" "$2" status >/dev/null 2>&1; then
    log "starting postgresql $1/$2"
    pg_ctlcluster "$1" "$2" start
  fi
  wait_for "postgresql" 60 pg_isready -q -h 127.0.0.1 -p 5432
  pg_settings "$1" "$2"
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='${PG_USER}'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE ${PG_USER} LOGIN CREATEDB PASSWORD '${PG_PASSWORD}'\""
  # Lets test fixtures drop their throwaway databases even while autovacuum is connected.
  su postgres -c "psql -qc 'GRANT pg_signal_backend TO ${PG_USER}'" >/dev/null
  su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='${PG_DB}'\"" | grep -q 1 ||
    su postgres -c "createdb -O ${PG_USER} ${PG_DB}"
  log "postgresql up on 127.0.0.1:5432"
}
# The server settings docker-compose.yml passes too (docs/postgres.md, "Server settings").
PG_SETTINGS=(shared_buffers=1GB max_wal_size=4GB)
pg_settings() {  # $1 $2: the cluster; restarts it only when a setting had to change
  local setting name value changed=0
  for setting in "${PG_SETTINGS[@]}"; do
    name=${setting%%=*} value=${setting#*=}
    if [[ $(su postgres -c "psql -qtAc 'SHOW ${name}'") != "$value" ]]; then
      su postgres -c "psql -qc \"ALTER SYSTEM SET ${name} = '${value}'\"" >/dev/null
      changed=1
    fi
  done
  if (( changed )); then
    log "postgresql settings: ${PG_SETTINGS[*]}; restarting"
    pg_ctlcluster "$1" "$2" restart
    wait_for "postgresql" 60 pg_isready -q -h 127.0.0.1 -p 5432
  fi
}
pg_down() {
  local cluster; cluster=$(pg_cluster)
  [[ -n $cluster ]] || return 0
  # shellcheck disable=SC2086
  set -- $cluster
  if pg_ctlcluster "$1" "$2" status >/dev/null 2>&1; then log "stopping postgresql"; pg_ctlcluster "$1" "$2" stop; fi
}

# ------------------------------------------------------------------- Neo4j
neo4j_java() { java -cp "$NEO4J_HOME/lib/*" "$@"; }
neo4j_env() { export NEO4J_HOME NEO4J_CONF=$NEO4J_HOME/conf; }
bolt_ready() { "$ROOT/.venv/bin/python" "$ROOT/scripts/bolt_ping.py" >/dev/null 2>&1; }
# The version whose jars are in $NEO4J_HOME/lib (empty when none are).
neo4j_installed() { cat "$NEO4J_HOME/lib/.version" 2>/dev/null || true; }
neo4j_install() {
  if [[ $(neo4j_installed) == "$NEO4J_VERSION" ]]; then return; fi
  log "resolving Neo4j $NEO4J_VERSION jars from Maven Central"
  rm -rf "$NEO4J_HOME/lib"
  mkdir -p "$NEO4J_HOME"/{lib,conf,data,logs,run,plugins,import}
  mvn -q -B -Dstyle.color=never -f "$ROOT/services/neo4j/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$NEO4J_HOME/lib"
  echo "$NEO4J_VERSION" >"$NEO4J_HOME/lib/.version"
}
# The Neo4j servers listening on this project's Bolt port (7687), by their own config: a
# second server on other ports (a benchmark's own) is not in the way and is left alone.
neo4j_on_our_port() {
  local pid conf
  for pid in $(pgrep -f 'org[.]neo4j[.]server[.](CommunityEntryPoint|Neo4jCommunity)' || true); do
    conf=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | sed -n 's/^--config-dir=//p') || continue
    grep -qs '^server[.]bolt[.]listen_address=.*:7687$' "$conf/neo4j.conf" && echo "$pid"
  done
  return 0
}
# Whether the Neo4j on our port, if any, was started from another checkout.
neo4j_foreign() {
  local pid
  for pid in $(neo4j_on_our_port); do
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "--home-dir=$NEO4J_HOME" || return 0
  done
  return 1
}

neo4j_up() {
  # Another checkout's server has another data directory: a fault test restarting "the"
  # server would bring up this checkout's own and find the graph it wrote gone.
  if neo4j_foreign; then log "neo4j of another checkout is running: replacing it"; neo4j_down; fi
  # Started before services/neo4j/pom.xml named another version: stopped with its own jars,
  # then replaced by the version the tests are meant to run.
  local installed
  installed=$(neo4j_installed)
  if [[ -n $installed && $installed != "$NEO4J_VERSION" ]] && bolt_ready; then
    log "neo4j $installed is running, the project names $NEO4J_VERSION: replacing it"
    neo4j_down
  fi
  if bolt_ready; then log "neo4j already up"; return; fi
  neo4j_install
  mkdir -p "$NEO4J_HOME"/{conf,data,logs,run,plugins,import}
  # NEO4J_CONF_SOURCE: another neo4j.conf, for bench.neo4j_settings' side-by-side runs.
  cp "${NEO4J_CONF_SOURCE:-$ROOT/services/neo4j/neo4j.conf}" "$NEO4J_HOME/conf/neo4j.conf"
  neo4j_env
  if [[ ! -f $NEO4J_HOME/data/dbms/auth.ini ]]; then
    neo4j_java org.neo4j.server.startup.Neo4jAdminCommand dbms set-initial-password "$NEO4J_PASSWORD" >/dev/null
  fi
  if ! neo4j_java org.neo4j.server.startup.Neo4jCommand status >/dev/null 2>&1; then
    log "starting neo4j $NEO4J_VERSION"
    neo4j_java org.neo4j.server.startup.Neo4jCommand start >"$NEO4J_HOME/logs/launcher.log" 2>&1 ||
      die "neo4j did not start: $(tail -5 "$NEO4J_HOME/logs/launcher.log")"
  fi
  wait_for "neo4j bolt (see $NEO4J_HOME/logs)" 180 bolt_ready
  log "neo4j up on bolt://127.0.0.1:7687"
}
neo4j_down() {
  if [[ -d $NEO4J_HOME/lib ]]; then
    neo4j_env
    if neo4j_java org.neo4j.server.startup.Neo4jCommand status >/dev/null 2>&1; then
      log "stopping neo4j"
      neo4j_java org.neo4j.server.startup.Neo4jCommand stop >/dev/null
    fi
  fi
  # A server started from another checkout (another NEO4J_HOME) still holds the ports:
  # stop it through its process, as its own launcher would, and wait until Bolt is gone.
  local pids
  pids=$(neo4j_on_our_port)
  if [[ -n $pids ]]; then
    log "stopping neo4j (pid ${pids//$'\n'/ })"
    # shellcheck disable=SC2086
    kill -TERM $pids
    wait_for "neo4j to stop" 120 bash -c "for p in ${pids//$'\n'/ }; do [[ -e /proc/\$p ]] && exit 1; done; exit 0"
  fi
}

# -------------------------------------------------------------- Prometheus
# Installed only: tests/integration/test_monitoring.py starts its own server on a free
# port with the project's monitoring/prometheus.yml, and stops it.
prometheus_install() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then return; fi
  apt_install prometheus
  # The package may start its system service; the tests need only the binaries.
  if command -v service >/dev/null; then service prometheus stop >/dev/null 2>&1 || true; fi
}

use_docker() { [[ ${SERVICES_USE_DOCKER:-0} == 1 ]] && docker info >/dev/null 2>&1; }

case ${1:-up} in
  up)
    if use_docker; then
      docker compose -f "$ROOT/docker-compose.yml" up -d --wait rabbitmq postgres neo4j
      prometheus_install; exit
    fi
    rabbit_up; pg_up; neo4j_up; prometheus_install ;;
  down)
    if use_docker; then docker compose -f "$ROOT/docker-compose.yml" stop rabbitmq postgres neo4j; exit; fi
    neo4j_down; pg_down; rabbit_down ;;
  up-rabbitmq) rabbit_up ;; down-rabbitmq) rabbit_down ;;
  up-postgres) pg_up ;; down-postgres) pg_down ;;
  up-neo4j) neo4j_up ;; down-neo4j) neo4j_down ;;
  up-prometheus) prometheus_install ;;
  *) die "usage: $0 up|down|up-<server>|down-<server>" ;;
esac
