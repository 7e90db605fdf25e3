#!/usr/bin/env bash
# A local Redis Cluster of 3 masters and 3 replicas, from redis-server processes with this
# project's own configuration and data directory (never /etc, never the system Redis):
#   deploy/redis-cluster.sh up     [--dir DIR] [--port BASE]   start it (idempotent)
#   deploy/redis-cluster.sh down   [--dir DIR]                 stop it and delete its data
#   deploy/redis-cluster.sh status [--dir DIR]
#   deploy/redis-cluster.sh url    [--port BASE]               the URL to give the nodes
# The six nodes listen on 127.0.0.1:BASE..BASE+5 (default 7000), their cluster bus on
# BASE+10000..BASE+10005, and keep nodes.conf, pid and log in DIR/<port>/
# (default deploy/run/redis-cluster). A small cluster-node-timeout (1 s) makes a killed
# master's replica take over within about 2 s.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
# shellcheck source=deploy/lib.sh
. "$root/deploy/lib.sh"

cmd=${1:-}
shift || true
dir=$root/deploy/run/redis-cluster
base=7000
while [ $# -gt 0 ]; do
    case "$1" in
        --dir) dir=$2; shift 2 ;;
        --port) base=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$dir" in /*) ;; *) dir=$root/$dir ;; esac
# Bus ports are port + 10000 and must stay below 65536.
if [ "$base" -lt 1024 ] || [ "$base" -gt 55530 ]; then
    echo "redis-cluster: --port must be between 1024 and 55530 (the bus port is port + 10000)" >&2
    exit 2
fi
ports() { seq "$base" $((base + 5)); }

need_redis() {
    if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
        echo "redis-cluster: redis-server and redis-cli are needed: apt-get install -y redis-server" >&2
        exit 1
    fi
}

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

state_ok() {
    local p
    for p in $(ports); do
        redis-cli -p "$p" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
    done
}

url() {
    local p rest=""
    for p in $(seq $((base + 1)) $((base + 5))); do
        rest="$rest${rest:+&}node=127.0.0.1:$p"
    done
    echo "redis-cluster://127.0.0.1:$base?$rest"
}

up() {
    need_redis
    local p fresh=0
    for p in $(ports); do
        mkdir -p "$dir/$p"
        if alive "$dir/$p/redis.pid"; then continue; fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "redis-cluster: 127.0.0.1:$p is in use by a process not started from $dir; stop it or use --port" >&2
            exit 1
        fi
        [ -f "$dir/$p/nodes.conf" ] || fresh=1
        redis-server --port "$p" --bind 127.0.0.1 --dir "$dir/$p" \
            --daemonize yes --pidfile "$dir/$p/redis.pid" --logfile "$dir/$p/redis.log" \
            --save "" --appendonly no \
            --cluster-enabled yes --cluster-config-file nodes.conf \
            --cluster-node-timeout 1000 \
            --cluster-replica-validity-factor 0 \
            --cluster-require-full-coverage no \
            --cluster-allow-pubsubshard-when-down yes
    done
    for p in $(ports); do wait_port "$p" 10; done
    if [ "$fresh" = 1 ] && ! state_ok; then
        local addrs=()
        for p in $(ports); do addrs+=("127.0.0.1:$p"); done
        redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 || {
            echo "redis-cluster: cluster create failed; see $dir/create.log" >&2
            cat "$dir/create.log" >&2
            exit 1
        }
    fi
    for _ in $(seq 1 100); do
        if state_ok; then
            echo "redis-cluster: up, 3 masters + 3 replicas on 127.0.0.1:$base-$((base + 5)); url $(url)"
            return 0
        fi
        sleep 0.1
    done
    echo "redis-cluster: cluster_state is not ok after 10 s (logs in $dir/*/redis.log)" >&2
    exit 1
}

down() {
    local p
    [ -d "$dir" ] || { echo "redis-cluster: not running"; return 0; }
    for p in "$dir"/*/; do
        p=$(basename "$p")
        if alive "$dir/$p/redis.pid"; then kill -KILL "$(cat "$dir/$p/redis.pid")" 2>/dev/null || true; fi
    done
    rm -rf "$dir"
    echo "redis-cluster: down"
}

status() {
    local p
    [ -d "$dir" ] || { echo "redis-cluster: not running"; return 0; }
    for p in "$dir"/*/; do
        p=$(basename "$p")
        if alive "$dir/$p/redis.pid"; then
            echo "$p: $(redis-cli -p "$p" role 2>/dev/null | head -1) (pid $(cat "$dir/$p/redis.pid"))"
        else
            echo "$p: stopped"
        fi
    done
}

case "$cmd" in
    up) up ;;
    down) down ;;
    status) status ;;
    url) url ;;
    *) echo "usage: $0 up|down|status|url [--dir DIR] [--port BASE]" >&2; exit 2 ;;
esac
