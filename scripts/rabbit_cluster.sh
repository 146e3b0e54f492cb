#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, for the failover fault tests.
#
#   scripts/rabbit_cluster.sh up DIR        start rabbit-a/b/c@localhost and cluster them
#   scripts/rabbit_cluster.sh down DIR      stop the three nodes (DIR is left for the caller)
#   scripts/rabbit_cluster.sh start DIR N   start node N (a, b or c) again; it rejoins
#   scripts/rabbit_cluster.sh kill DIR N    kill -9 node N's Erlang VM
#   scripts/rabbit_cluster.sh ctl DIR N ... rabbitmqctl on node N (e.g. stop_app, start_app)
#
# Debian's rabbitmq-server, run from its own scripts as the calling user: node names
# rabbit-{a,b,c}@localhost, AMQP on 5681-5683, Erlang distribution on 25681-25683, no
# plugins (so no management or Prometheus port), data, logs and the Erlang cookie under
# DIR. The cookie lives in DIR (HOME points there), so these nodes can neither reach nor
# be reached by the node of `make services` (rabbit@<host>, port 5672), which this
# script never names. User discogs/discogs, as in `make services`.
set -euo pipefail

RMQ_BIN=/usr/lib/rabbitmq/bin
NODES=(a b c)
USER_NAME=discogs
USER_PASSWORD=discogs

# Installs Debian's package when its binaries are missing (`make services` in Docker mode
# does not install them on the machine).
need() {
  [[ -x $1 ]] && return 0
  log "installing $2 from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

log() { echo "[rabbit_cluster] $*" >&2; }

index_of() {
  case "$1" in a) echo 0 ;; b) echo 1 ;; c) echo 2 ;; *) log "no node $1 (a, b or c)"; exit 2 ;; esac
}

# The environment one node runs (and is reached) in.
node_env() {
  local dir=$1 node=$2 i
  i=$(index_of "$node")
  local base="$dir/rabbit-$node"
  echo "HOME=$dir" \
    "RABBITMQ_NODENAME=rabbit-$node@localhost" \
    "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
    "RABBITMQ_NODE_PORT=$((5681 + i))" \
    "RABBITMQ_DIST_PORT=$((25681 + i))" \
    "RABBITMQ_MNESIA_BASE=$base/mnesia" \
    "RABBITMQ_LOG_BASE=$base/log" \
    "RABBITMQ_PID_FILE=$base/pid" \
    "RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" \
    "RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf" \
    "RABBITMQ_CONFIG_FILE=$dir/rabbitmq" \
    "RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config"
}

ctl() {
  local dir=$1 node=$2
  shift 2
  # shellcheck disable=SC2046 # node_env's words are NAME=value pairs
  env $(node_env "$dir" "$node") "$RMQ_BIN/rabbitmqctl" -q -n "rabbit-$node@localhost" "$@"
}

prepare() {
  local dir=$1
  mkdir -p "$dir"
  if [[ ! -f "$dir/.erlang.cookie" ]]; then
    head -c 30 /dev/urandom | base64 | tr -dc 'A-Za-z' | head -c 20 > "$dir/.erlang.cookie"
    chmod 400 "$dir/.erlang.cookie"
  fi
  echo "[]." > "$dir/enabled_plugins"
  : > "$dir/rabbitmq-env.conf"
  echo "[]." > "$dir/advanced.config"
  cat > "$dir/rabbitmq.conf" <<'EOF'
loopback_users = none
log.console = false
log.file.level = info
EOF
}

start_node() {
  local dir=$1 node=$2
  mkdir -p "$dir/rabbit-$node/log"
  rm -f "$dir/rabbit-$node/pid"  # a killed node's: `wait` below must see the new one
  log "starting rabbit-$node@localhost"
  # shellcheck disable=SC2046
  env $(node_env "$dir" "$node") "$RMQ_BIN/rabbitmq-server" -detached \
    >> "$dir/rabbit-$node/log/start.out" 2>&1
  # `wait` waits for the pid file, then for the node to finish booting.
  ctl "$dir" "$node" wait "$dir/rabbit-$node/pid" --timeout 120
}

up() {
  local dir=$1 node port
  need "$RMQ_BIN/rabbitmq-server" rabbitmq-server
  for port in 5681 5682 5683 25681 25682 25683; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      log "port $port is in use (a cluster left running? scripts/rabbit_cluster.sh down DIR)"
      exit 1
    fi
  done
  prepare "$dir"
  for node in "${NODES[@]}"; do start_node "$dir" "$node"; done
  for node in b c; do
    ctl "$dir" "$node" stop_app
    ctl "$dir" "$node" join_cluster rabbit-a@localhost
    ctl "$dir" "$node" start_app
  done
  ctl "$dir" a add_user "$USER_NAME" "$USER_PASSWORD" >/dev/null
  ctl "$dir" a set_permissions -p / "$USER_NAME" ".*" ".*" ".*" >/dev/null
  local running
  running=$(ctl "$dir" a eval 'length(rabbit_nodes:all_running()).')
  [[ "$running" == 3 ]] || { log "cluster has $running running nodes, not 3"; exit 1; }
  log "cluster up: amqp://$USER_NAME:***@127.0.0.1:5681-5683/"
}

kill_node() {
  local dir=$1 node=$2 pid
  pid=$(cat "$dir/rabbit-$node/pid")
  log "kill -9 rabbit-$node@localhost (pid $pid)"
  kill -9 "$pid"
}

down() {
  local dir=$1 node
  for node in "${NODES[@]}"; do
    if [[ -f "$dir/rabbit-$node/pid" ]]; then
      ctl "$dir" "$node" stop "$dir/rabbit-$node/pid" 2>/dev/null \
        || kill -9 "$(cat "$dir/rabbit-$node/pid")" 2>/dev/null || true
    fi
  done
  log "cluster down"
}

case "${1:-}" in
  up) up "${2:?DIR}" ;;
  down) down "${2:?DIR}" ;;
  start) start_node "${2:?DIR}" "${3:?node}" ;;
  kill) kill_node "${2:?DIR}" "${3:?node}" ;;
  ctl) ctl "${2:?DIR}" "${3:?node}" "${@:4}" ;;
  *) echo "usage: $0 up|down DIR | start|kill DIR NODE | ctl DIR NODE ARGS..." >&2; exit 2 ;;
esac
