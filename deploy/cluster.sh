#!/usr/bin/env bash
# A local cluster: two chat-server nodes (127.0.0.1:6000 and :6002, configs
# deploy/node-a.toml and node-b.toml) on the local MySQL and Redis, behind
# nginx on 127.0.0.1:8000 (deploy/nginx.conf); the web client through nginx on
# http://127.0.0.1:8080/ (the nodes' WebSocket listeners, 6080 and 6082). Everything it starts keeps its
# pid and log under deploy/run/.
#   deploy/cluster.sh up | down | status
# REDIS=cluster (make cluster REDIS=cluster) puts the nodes on a local Redis Cluster of
# 3 masters + 3 replicas instead (deploy/redis-cluster.sh: 127.0.0.1:7000-7005, data in
# deploy/run/redis-cluster/); `down` stops it too.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run=$root/deploy/run
target=${CARGO_TARGET_DIR:-$root/target}
server=$target/debug/chat-server
# shellcheck source=deploy/lib.sh
. "$root/deploy/lib.sh"


alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

redis_cluster_dir=$run/redis-cluster

up() {
    bash deploy/db-setup.sh
    if [ "${REDIS:-single}" = cluster ]; then
        bash deploy/redis-cluster.sh up --dir "$redis_cluster_dir" --port 7000
        # The environment overrides the nodes' config files (redis_url).
        CHAT_REDIS_URL=$(bash deploy/redis-cluster.sh url --port 7000)
        export CHAT_REDIS_URL
    else
        bash deploy/redis-setup.sh
    fi
    bash deploy/nginx-setup.sh
    cargo build --bin chat-server
    mkdir -p "$run/nginx"
    for node in node-a node-b; do
        if alive "$run/$node.pid"; then echo "$node already running"; continue; fi
        setsid "$server" --config "deploy/$node.toml" >"$run/$node.log" 2>&1 < /dev/null &
        echo $! >"$run/$node.pid"
    done
    wait_port 6000 30
    wait_port 6002 30
    if ! alive "$run/nginx/nginx.pid"; then
        nginx -p "$run/nginx" -c "$root/deploy/nginx.conf" -e "$run/nginx/error.log"
    fi
    wait_port 8000 10
    wait_port 8080 10
    echo "cluster up: nginx 127.0.0.1:8000 -> nodes 127.0.0.1:6000, 127.0.0.1:6002 (logs in deploy/run/)"
    echo "web client: open http://127.0.0.1:8080/ (nginx -> WebSocket listeners 127.0.0.1:6080, 127.0.0.1:6082)"
}

down() {
    if alive "$run/nginx/nginx.pid"; then
        nginx -p "$run/nginx" -c "$root/deploy/nginx.conf" -e "$run/nginx/error.log" -s quit || true
    fi
    for node in node-a node-b; do
        if alive "$run/$node.pid"; then
            kill -TERM "$(cat "$run/$node.pid")" || true
        fi
    done
    for node in node-a node-b; do
        for _ in $(seq 1 150); do alive "$run/$node.pid" || break; sleep 0.1; done
        if alive "$run/$node.pid"; then kill -KILL "$(cat "$run/$node.pid")" || true; fi
        rm -f "$run/$node.pid"
    done
    if [ -d "$redis_cluster_dir" ]; then bash deploy/redis-cluster.sh down --dir "$redis_cluster_dir"; fi
    echo "cluster down"
}

status() {
    for p in node-a node-b nginx/nginx; do
        if alive "$run/$p.pid"; then echo "$p: running (pid $(cat "$run/$p.pid"))"; else echo "$p: stopped"; fi
    done
    if [ -d "$redis_cluster_dir" ]; then bash deploy/redis-cluster.sh status --dir "$redis_cluster_dir"; fi
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    status) status ;;
    *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
