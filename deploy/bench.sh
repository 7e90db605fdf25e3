#!/usr/bin/env bash
# The benchmark suite of issue 6 (`make bench`): builds release binaries,
# starts its OWN local cluster — nodes 127.0.0.1:6100 and :6102 on the local
# MySQL (database chat) and Redis (channel prefix bench:), nginx on
# 127.0.0.1:8100 rendered from deploy/nginx.conf — runs chat-bench against it
# and writes bench/RESULTS.md. Everything it starts lives under bench/run/ and
# is stopped on exit. It does not touch `make cluster` (6000/6002/8000).
#
# Knobs (environment): BENCH_DURATION (s per rate, 10), BENCH_GRACE (s, 3),
# BENCH_RATES_CROSS, BENCH_RATES_SAME, BENCH_RATES_NGINX, BENCH_RATES_GROUP10,
# BENCH_RATES_GROUP50 (msgs/s lists), BENCH_IDLE_USERS (10000),
# BENCH_THREADS (chat-bench worker threads, 1), BENCH_OUT (bench/RESULTS.md),
# BENCH_STEPS (which of: idle cross same nginx group10 group50 metrics ws edge devices rcluster tls sqlite append;
# default all), BENCH_DB (the nodes' MySQL database, chat; another is created and granted to the
# user chat), BENCH_RATES_SQLITE (msgs/s list of the SQLite node, run up to the first failing rate),
# BENCH_APPEND_VARIANTS (message:100,log:100,message:10,log:10,message:1,log:1), BENCH_APPEND_TXNS (1000),
# BENCH_RATES_RCLUSTER (msgs/s list of the Redis Cluster sweep, 10000,20000,30000),
# BENCH_RATE_OPS (msgs/s of the metrics, ws and tls steps' fixed-rate runs, 10000),
# BENCH_RATE_DEVICES (msgs/s of the devices step's sessions runs, 2000), BENCH_PRESENCE_CYCLES (100),
# BENCH_WORKERS (the nodes' worker threads, 1), BENCH_SERVER (another chat-server binary, for A/B runs),
# BENCH_BASELINE (a git revision, default 2ee51e0: the last at-most-once server; `none` skips it):
# built once into bench/run/baseline/ (reused while the revision stays the same); after this
# commit's steps the suite restarts both nodes on it, same settings and database, and runs the
# cross and group50 steps again into cross-baseline.json and group50-baseline.json, so that
# RESULTS.md shows the durable path beside the at-most-once one, measured in one run.
#
# The metrics and tls steps (issue 12) run one cross-node one-to-one load at BENCH_RATE_OPS:
# metrics-off.json with the nodes' /metrics (admin listeners 127.0.0.1:6101 and :6103) left
# alone, metrics-on.json with both scraped by curl every second, and tls.json after restarting
# both nodes with TLS on the client port (a self-signed certificate made by openssl into
# bench/run/tls/, trusted by chat-bench through --ca-file). tls runs last before the baseline
# switch, so nothing after it runs on the TLS nodes.
#
# The rcluster step (issue 11) restarts both nodes on a Redis Cluster of 3 masters and 3 replicas
# that the suite starts itself (deploy/redis-cluster.sh on 127.0.0.1:7500-7505, data in
# bench/run/redis-cluster/, stopped on exit) and runs the cross-node sweep again into
# rcluster.json, watching each Redis process, so that RESULTS.md shows where the publish load goes
# beside the single Redis's cross.json (which watches the one Redis).
#
# Issue 19 (what durability costs): the cross sweep starts at 200 msgs/s, and the MySQL steps
# (cross, same, group50 and the baseline's) read MySQL's SHOW GLOBAL STATUS around each rate
# (chat-bench --mysql-status). The sqlite step stops both nodes and starts one on the embedded
# default (no database URL: data/chat.db under bench/run/sqlite/, made afresh; no Redis: the
# in-process broker) and sweeps same-node one-to-one up to the first rate that fails, into
# sqlite.json; that node runs with its default worker threads, one per core, as a new user's does
# (BENCH_SQLITE_WORKERS=N to pin them). The append step (nodes stopped) drops and recreates the database ${BENCH_DB}_append,
# migrates it with `chat-server migrate`, and runs `chat-bench append` there (the server's
# message rows inserted by a minimal loop, MySQL's CPU from /proc) into append.json.
#
# The edge step (issue 22) measures what the PROXY protocol and the per-address bookkeeping
# cost: `chat-bench connect` opens, logs in, logs out and closes BENCH_EDGE_CONNS (5000)
# connections, plain (connect-plain.json: the bench's 127.0.0.1, exempt from the limits) and
# each with a PROXY v1 header of an address of its own (--proxy, connect-proxy.json), and
# the metrics step's fixed-rate load runs again behind PROXY headers (edge.json) beside
# metrics-off.json.
#
# The ws step (issue 13) runs the same load through WebSocket (chat-bench --ws) on the nodes'
# WebSocket listeners (127.0.0.1:6104 and :6105; nginx's web port is rendered as 8180), so
# ws.json stands beside metrics-off.json: the same rate, CPU per message over each transport.
#
#   deploy/bench.sh        the suite
#   deploy/bench.sh up     only the cluster, kept up until interrupted (for profiling by hand)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
run=$root/bench/run
results=$run/results
target=${CARGO_TARGET_DIR:-$root/target}
server=${BENCH_SERVER:-$target/release/chat-server}
bench=$target/release/chat-bench

NODE_A=127.0.0.1:6100
NODE_B=127.0.0.1:6102
ADMIN_A=127.0.0.1:6101
ADMIN_B=127.0.0.1:6103
LB=127.0.0.1:8100
WS_A=127.0.0.1:6104
WS_B=127.0.0.1:6105
WEB_LB=127.0.0.1:8180
DURATION=${BENCH_DURATION:-10}
GRACE=${BENCH_GRACE:-3}
RATES_CROSS=${BENCH_RATES_CROSS:-200,1000,5000,10000,20000,30000,40000}
RATES_SQLITE=${BENCH_RATES_SQLITE:-200,1000,5000,10000,20000,30000,40000,50000,60000}
APPEND_VARIANTS=${BENCH_APPEND_VARIANTS:-message:100,log:100,message:10,log:10,message:1,log:1}
APPEND_TXNS=${BENCH_APPEND_TXNS:-1000}
DB=${BENCH_DB:-chat}
DB_URL=mysql://chat:chat@127.0.0.1:3306/$DB
APPEND_DB=${DB}_append
APPEND_URL=mysql://chat:chat@127.0.0.1:3306/$APPEND_DB
RATES_SAME=${BENCH_RATES_SAME:-10000,20000,30000,40000,50000,60000}
RATES_NGINX=${BENCH_RATES_NGINX:-10000,20000}
RATES_GROUP10=${BENCH_RATES_GROUP10:-2000,5000,8000}
RATES_GROUP50=${BENCH_RATES_GROUP50:-500,1100,2000,3000}
IDLE_USERS=${BENCH_IDLE_USERS:-10000}
THREADS=${BENCH_THREADS:-1}
OUT=${BENCH_OUT:-bench/RESULTS.md}
STEPS=${BENCH_STEPS:-idle cross same nginx group10 group50 metrics ws edge devices rcluster tls sqlite append}
RATE_DEVICES=${BENCH_RATE_DEVICES:-2000}
PRESENCE_CYCLES=${BENCH_PRESENCE_CYCLES:-100}
EDGE_CONNS=${BENCH_EDGE_CONNS:-5000}
RATES_RCLUSTER=${BENCH_RATES_RCLUSTER:-10000,20000,30000}
REDIS_CLUSTER_PORT=7500
RATE_OPS=${BENCH_RATE_OPS:-10000}
BASELINE=${BENCH_BASELINE:-2ee51e0}
# The steps run again on the baseline server.
BASELINE_STEPS="cross group50"

# The nodes' settings: cheap password hashing (logging in 10,000 users with the
# production argon2 cost takes minutes by design) and per-connection request
# limits far above what the bench sends per connection. Everything else is default.
NODE_ENV=(
    CHAT_DATABASE_URL=$DB_URL
    CHAT_REDIS_URL=redis://127.0.0.1:6379
    CHAT_CHANNEL_PREFIX=bench:
    CHAT_HASH_MEMORY_KIB=64
    CHAT_HASH_ITERATIONS=1
    CHAT_HASH_CONCURRENCY=2
    CHAT_RATE_PER_SEC=100000
    CHAT_RATE_BURST=100000
    # deploy/nginx.conf sends the PROXY protocol; the bench's direct connections come from
    # 127.0.0.1 (proxy_from) without a header and are served as they are.
    CHAT_PROXY_PROTOCOL=true
)
# One runtime worker thread per node (CHAT_WORKER_THREADS; BENCH_WORKERS=0 for one per core):
# two nodes, the bench, Redis and MySQL share two cores here, and a second worker in each
# node only adds cross-thread wake-ups (A/B at 20,000 and 30,000 msgs/s in bench/README.md).
WORKERS=${BENCH_WORKERS:-1}
NODE_ENV+=("CHAT_WORKER_THREADS=$WORKERS")

log() { echo "bench: $*" >&2; }
# shellcheck source=deploy/lib.sh
. "$root/deploy/lib.sh"


port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pids_started=()
nginx_started=0

redis_cluster_started=0

cleanup() {
    set +e
    if [ "$redis_cluster_started" = 1 ]; then
        bash deploy/redis-cluster.sh down --dir "$run/redis-cluster" >/dev/null
    fi
    if [ "$nginx_started" = 1 ] && [ -f "$run/nginx/nginx.pid" ]; then
        nginx -p "$run/nginx" -c "$run/nginx.conf" -e "$run/nginx/error.log" -s quit 2>/dev/null
    fi
    for pid in "${pids_started[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    for pid in "${pids_started[@]}"; do
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null
    done
    [ "${#pids_started[@]}" -gt 0 ] && log "stopped what it started"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in 6100 6101 6102 6103 8100; do
    if ! port_free "$port"; then
        log "127.0.0.1:$port is in use (another bench still running?); stop it first"
        exit 1
    fi
done

log "building release binaries"
cargo build --release --bin chat-server --bin chat-bench
# What was built: HEAD plus whatever uncommitted changes the shared work tree had then.
commit=$(git rev-parse HEAD)
dirty=$(git status --porcelain --untracked-files=no -- crates bin migrations Cargo.toml Cargo.lock |
    awk '{print $2}' | tr '\n' ' ' | sed 's/ $//')

# The baseline server: the tree of one commit alone (git archive, so neither the shared work
# tree nor `git worktree list` is touched), built with its own Cargo.lock into its own target
# folder, the binary kept in bench/run/baseline/ with the commit it was built from.
baseline_rev=""
baseline_server=""
baseline_build=""
want_baseline() { # the suite runs a baseline: not `up`, not BENCH_BASELINE=none, and a step to run again
    local s
    [ "${1:-}" != "up" ] && [ "$BASELINE" != none ] || return 1
    for s in $BASELINE_STEPS; do
        case " $STEPS " in *" $s "*) return 0 ;; esac
    done
    return 1
}
build_baseline() {
    local t0
    if ! baseline_rev=$(git rev-parse --verify --quiet "$BASELINE^{commit}"); then
        log "BENCH_BASELINE=$BASELINE is not a commit of this repository (or none to skip it)"
        exit 1
    fi
    baseline_server=$run/baseline/chat-server
    if [ -x "$baseline_server" ] && [ "$(cat "$run/baseline/rev" 2>/dev/null)" = "$baseline_rev" ]; then
        log "baseline ${baseline_rev:0:7}: reusing $baseline_server"
        baseline_build="reused from an earlier run"
        return
    fi
    log "building the baseline server at ${baseline_rev:0:7} (bench/run/baseline-src, bench/run/baseline-target)"
    t0=$(date +%s)
    rm -rf "$run/baseline-src" "$run/baseline"
    mkdir -p "$run/baseline-src" "$run/baseline"
    # -m: the files get the time of extraction, not the commit's; with the commit's, cargo
    # would take another revision's artifacts in baseline-target for up to date.
    git archive "$baseline_rev" | tar -x -m -C "$run/baseline-src"
    (cd "$run/baseline-src" &&
        CARGO_TARGET_DIR=$run/baseline-target cargo build --release --locked --bin chat-server)
    cp "$run/baseline-target/release/chat-server" "$baseline_server"
    echo "$baseline_rev" >"$run/baseline/rev"
    baseline_build="built in $(($(date +%s) - t0)) s"
    log "baseline server $baseline_build"
}
if want_baseline "${1:-}"; then
    build_baseline
fi

bash deploy/db-setup.sh
grant_db() { # database: created if missing, all of it granted to the user chat (root over the socket)
    mariadb -uroot -e "CREATE DATABASE IF NOT EXISTS \`$1\`; GRANT ALL ON \`$1\`.* TO 'chat'@'localhost';
        GRANT ALL ON \`$1\`.* TO 'chat'@'127.0.0.1'"
}
[ "$DB" = chat ] || grant_db "$DB"
bash deploy/redis-setup.sh
bash deploy/nginx-setup.sh

machine_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }

machine_busy() { # busy cores of the whole machine over 3 s (user+nice+system+irq+softirq)
    local a b
    a=$(machine_ticks)
    sleep 3
    b=$(machine_ticks)
    awk -v d=$((b - a)) -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", d / hz / 3}'
}
background=$(machine_busy)
log "machine busy before the suite (other work): $background cores"

rm -rf "$results"
rm -f "$run"/baseline-node-*.log "$run"/*-baseline.log "$run"/tls-node-*.log "$run"/rcluster-node-*.log \
    "$run"/sqlite-node.log "$run"/append-migrate.log
mkdir -p "$run/nginx" "$results"

# 10,000 connections on a node and as many in the bench: raise the open-file limit.
ulimit -n "$(ulimit -Hn)"
log "open-file limit $(ulimit -n)"

last_pid=""
start_node() { # name listen binary [VAR=value...: more settings, e.g. CHAT_ADMIN_LISTEN]
    local name=$1 listen=$2 binary=$3
    shift 3
    env -u RUST_LOG "${NODE_ENV[@]}" "$@" CHAT_LISTEN="$listen" CHAT_NODE_NAME="bench-$name" \
        setsid "$binary" >"$run/$name.log" 2>&1 </dev/null &
    last_pid=$!
    pids_started+=("$last_pid")
}
alive() { # pid: running (a node that exited stays a zombie of this script, which kill -0 still finds)
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}
stop_nodes() { # stops node-a and node-b (PID_A, PID_B) and waits until their ports are free
    local p port
    for p in "$PID_A" "$PID_B"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "$PID_A" "$PID_B"; do
        for _ in $(seq 1 150); do alive "$p" || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    keep=()
    for p in "${pids_started[@]}"; do
        [ "$p" = "$PID_A" ] || [ "$p" = "$PID_B" ] || keep+=("$p")
    done
    pids_started=("${keep[@]}")
    for port in 6100 6101 6102 6103 6104 6105; do
        for _ in $(seq 1 100); do port_free "$port" && break; sleep 0.1; done
    done
}
start_node node-a "$NODE_A" "$server" CHAT_ADMIN_LISTEN="$ADMIN_A" CHAT_WS_LISTEN="$WS_A"
PID_A=$last_pid
start_node node-b "$NODE_B" "$server" CHAT_ADMIN_LISTEN="$ADMIN_B" CHAT_WS_LISTEN="$WS_B"
PID_B=$last_pid
wait_port 6100 60
wait_port 6102 60
wait_port 6101 10
wait_port 6103 10

sed -e "s/127\.0\.0\.1:6000/$NODE_A/; s/127\.0\.0\.1:6002/$NODE_B/; s/127\.0\.0\.1:8000/$LB/" \
    -e "s/127\.0\.0\.1:6080/$WS_A/; s/127\.0\.0\.1:6082/$WS_B/; s/127\.0\.0\.1:8080/$WEB_LB/" \
    deploy/nginx.conf >"$run/nginx.conf"
nginx -p "$run/nginx" -c "$run/nginx.conf" -e "$run/nginx/error.log"
nginx_started=1
wait_port 8100 10
NGINX_MASTER=$(cat "$run/nginx/nginx.pid")
NGINX_WORKER=$(pgrep -P "$NGINX_MASTER" | head -n1 || true)
REDIS_PID=$(redis-cli -h 127.0.0.1 -p 6379 info server | tr -d '\r' | sed -n 's/^process_id://p')
MYSQL_PID=$(pidof mariadbd 2>/dev/null || pidof mysqld 2>/dev/null || true)
MYSQL_PID=${MYSQL_PID%% *}
log "node-a pid $PID_A, node-b pid $PID_B, nginx worker ${NGINX_WORKER:-?}, redis ${REDIS_PID:-?}, mysql ${MYSQL_PID:-?}"

PIDS="node-a=$PID_A,node-b=$PID_B"
WATCH=""
for w in "nginx=$NGINX_WORKER" "redis=$REDIS_PID" "mysql=$MYSQL_PID"; do
    [ -n "${w#*=}" ] && WATCH="${WATCH:+$WATCH,}$w"
done

if [ "${1:-}" = "up" ]; then
    # For profiling by hand: keep this cluster up until interrupted.
    log "cluster up; chat-bench ... --nodes $NODE_A,$NODE_B --pids $PIDS --watch $WATCH (Ctrl-C stops it)"
    while kill -0 "$PID_A" 2>/dev/null && kill -0 "$PID_B" 2>/dev/null; do sleep 1; done
    log "a node exited"
    exit 1
fi

node_ticks() { # utime+stime of both nodes, in clock ticks
    local t=0 p
    for p in "$PID_A" "$PID_B"; do
        t=$((t + $(sed 's/.*) //' "/proc/$p/stat" | awk '{print $12 + $13}')))
    done
    echo "$t"
}

settle() { # wait (at most 60 s) for quiet: the nodes under 5% of a core, the machine under 30%
    local i a b ma mb hz
    hz=$(getconf CLK_TCK)
    for ((i = 0; i < 60; i++)); do
        a=$(node_ticks) || return 0
        ma=$(machine_ticks)
        sleep 1
        b=$(node_ticks) || return 0
        mb=$(machine_ticks)
        if [ $(((b - a) * 100)) -lt $((5 * hz)) ] && [ $(((mb - ma) * 100)) -lt $((30 * hz)) ]; then
            return 0
        fi
    done
    log "the machine is not quiet (other work running); measuring anyway, see 'other procs cores'"
}

failed=()
step() { # name json-file chat-bench-args...  (name: a BENCH_STEPS word, or one with -baseline after it)
    local name=$1 file=$2 run_name=${2%.json}
    shift 2
    case " $STEPS " in *" ${name%-baseline} "*) ;; *) return 0 ;; esac
    settle
    log "step $run_name: chat-bench $*"
    if "$bench" --threads "$THREADS" "$@" --json >"$results/$file" 2> >(tee "$run/$run_name.log" >&2); then
        return 0
    fi
    log "step $run_name failed (see bench/run/$run_name.log)"
    rm -f "$results/$file"
    failed+=("$run_name")
}

timing=(--duration "$DURATION" --grace "$GRACE" --msg-bytes 64)
# MySQL's global status around each rate of the steps on MySQL (issue 19).
status=(--mysql-status "$DB_URL")
started=$(date +%s)

# Idle first, on fresh nodes: the memory before is the node's start-up memory.
step idle idle.json idle --nodes "$NODE_A" --users "$IDLE_USERS" --hold 10 --pids "node-a=$PID_A"
step cross cross.json sweep --nodes "$NODE_A,$NODE_B" --users 200 --cross 1 --rates "$RATES_CROSS" \
    "${timing[@]}" --max-p99-ms 50 --pids "$PIDS" --watch "$WATCH" "${status[@]}"
step same same.json sweep --nodes "$NODE_A,$NODE_B" --users 200 --cross 0 --rates "$RATES_SAME" \
    "${timing[@]}" --max-p99-ms 10 --pids "$PIDS" --watch "$WATCH" "${status[@]}"
step nginx nginx.json sweep --nodes "$LB" --users 200 --rates "$RATES_NGINX" \
    "${timing[@]}" --max-p99-ms 50 --pids "$PIDS" --watch "$WATCH"
step group10 group10.json sweep --mode group --nodes "$NODE_A,$NODE_B" --group-size 10 --groups 20 \
    --rates "$RATES_GROUP10" "${timing[@]}" --max-p99-ms 100 --pids "$PIDS" --watch "$WATCH"
step group50 group50.json sweep --mode group --nodes "$NODE_A,$NODE_B" --group-size 50 --groups 4 \
    --rates "$RATES_GROUP50" "${timing[@]}" --max-p99-ms 100 --pids "$PIDS" --watch "$WATCH" "${status[@]}"

# Issue 12: what the operations features cost, at one fixed rate, cross-node one-to-one.
ops=(--nodes "$NODE_A,$NODE_B" --users 200 --cross 1 --rate "$RATE_OPS" "${timing[@]}")
scrapes=0
scrape_every_second() { # curls both nodes' /metrics every second, until killed; counts in $run/scrapes
    : >"$run/scrapes"
    while :; do
        for a in "$ADMIN_A" "$ADMIN_B"; do
            curl -sf -o /dev/null --max-time 1 "http://$a/metrics" && echo "$a" >>"$run/scrapes"
        done
        sleep 1
    done
}
if [[ " $STEPS " == *" metrics "* ]]; then
    for a in "$ADMIN_A" "$ADMIN_B"; do
        if ! curl -sf --max-time 2 "http://$a/metrics" | grep -q '^# TYPE '; then
            log "no Prometheus metrics at http://$a/metrics (see bench/run/node-*.log)"
            failed+=("metrics: nothing at http://$a/metrics")
        fi
    done
    step metrics metrics-off.json chat "${ops[@]}" --pids "$PIDS" --watch "$WATCH"
    # The scraper starts after the settle, so the whole measured run is scraped.
    settle
    scrape_every_second &
    scraper=$!
    pids_started+=("$scraper")
    step metrics metrics-on.json chat "${ops[@]}" --pids "$PIDS" --watch "$WATCH"
    kill "$scraper" 2>/dev/null || true
    wait "$scraper" 2>/dev/null || true
    keep=()
    for p in "${pids_started[@]}"; do [ "$p" = "$scraper" ] || keep+=("$p"); done
    pids_started=("${keep[@]}")
    scrapes=$(wc -l <"$run/scrapes")
    log "metrics: $scrapes scrapes of /metrics during the second run"
fi

# Issue 13: the same fixed-rate load through WebSocket, beside metrics-off.json's TCP run.
step ws ws.json chat --ws --nodes "$WS_A,$WS_B" --users 200 --cross 1 --rate "$RATE_OPS" "${timing[@]}" \
    --pids "$PIDS" --watch "$WATCH"

# Issue 22: the PROXY protocol and the per-address bookkeeping, per connection and per message.
step edge connect-plain.json connect --nodes "$NODE_A,$NODE_B" --conns "$EDGE_CONNS" --pids "$PIDS"
step edge connect-proxy.json connect --proxy --nodes "$NODE_A,$NODE_B" --conns "$EDGE_CONNS" --pids "$PIDS"
step edge edge.json chat --proxy "${ops[@]}" --pids "$PIDS" --watch "$WATCH"

# Issue 20: a chat to a user with 3 sessions against 1 (the same load, new users each), and a
# user with 200 friends online logging in and out against one with none.
step devices sessions.json sessions --nodes "$NODE_A,$NODE_B" --pairs 100 --sessions 1,3 \
    --rate "$RATE_DEVICES" --duration "$DURATION" --pids "$PIDS"
step devices presence.json presence --nodes "$NODE_A,$NODE_B" --friends 0,200 --cycles "$PRESENCE_CYCLES" \
    --pids "$PIDS"

check_nodes() { # logs: the nodes must have survived their steps
    local p
    for p in "$PID_A" "$PID_B"; do
        if ! alive "$p"; then
            log "node pid $p died during the suite (see bench/run/$1)"
            failed+=("node $p died")
        fi
    done
}
check_nodes "node-*.log"

# Issue 11: the cross-node sweep with both nodes on a Redis Cluster, each Redis process watched.
if [[ " $STEPS " == *" rcluster "* ]]; then
    log "restarting both nodes on a Redis Cluster (3 masters + 3 replicas on $REDIS_CLUSTER_PORT-$((REDIS_CLUSTER_PORT + 5)))"
    bash deploy/redis-cluster.sh down --dir "$run/redis-cluster" >/dev/null
    redis_cluster_started=1
    if bash deploy/redis-cluster.sh up --dir "$run/redis-cluster" --port "$REDIS_CLUSTER_PORT" >&2; then
        stop_nodes
        rc_env=(CHAT_REDIS_URL="$(bash deploy/redis-cluster.sh url --port "$REDIS_CLUSTER_PORT")")
        start_node rcluster-node-a "$NODE_A" "$server" CHAT_ADMIN_LISTEN="$ADMIN_A" "${rc_env[@]}"
        PID_A=$last_pid
        start_node rcluster-node-b "$NODE_B" "$server" CHAT_ADMIN_LISTEN="$ADMIN_B" "${rc_env[@]}"
        PID_B=$last_pid
        if wait_port 6100 60 && wait_port 6102 60 && alive "$PID_A" && alive "$PID_B"; then
            PIDS="node-a=$PID_A,node-b=$PID_B"
            rc_watch="nginx=$NGINX_WORKER,mysql=$MYSQL_PID"
            for p in $(seq "$REDIS_CLUSTER_PORT" $((REDIS_CLUSTER_PORT + 5))); do
                role=$(redis-cli -p "$p" role | head -n1)
                rc_watch="$rc_watch,redis-$p-${role/slave/replica}=$(cat "$run/redis-cluster/$p/redis.pid")"
            done
            log "Redis Cluster node-a pid $PID_A, node-b pid $PID_B, watching $rc_watch"
            step rcluster rcluster.json sweep --nodes "$NODE_A,$NODE_B" --users 200 --cross 1 \
                --rates "$RATES_RCLUSTER" "${timing[@]}" --max-p99-ms 50 --pids "$PIDS" --watch "$rc_watch"
            check_nodes "rcluster-node-*.log"
            # The steps after this one (tls, the baseline) start nodes of their own on the single Redis.
            stop_nodes
        else
            log "the nodes did not come up on the Redis Cluster (see bench/run/rcluster-node-*.log)"
            failed+=("rcluster nodes did not start")
        fi
    else
        failed+=("the Redis Cluster did not start")
    fi
    bash deploy/redis-cluster.sh down --dir "$run/redis-cluster" >/dev/null
    redis_cluster_started=0
fi

tls_ran=0
if [[ " $STEPS " == *" tls "* ]]; then
    # Last before the baseline switch: both nodes restart with TLS on the client port.
    log "restarting both nodes with TLS on the client port"
    mkdir -p "$run/tls"
    if ! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -addext "subjectAltName=IP:127.0.0.1,DNS:localhost" \
        -addext "basicConstraints=critical,CA:FALSE" \
        -keyout "$run/tls/key.pem" -out "$run/tls/cert.pem" 2>"$run/tls/openssl.log"; then
        log "openssl could not make a certificate (see bench/run/tls/openssl.log)"
        failed+=("tls: no certificate")
    else
        stop_nodes
        tls_env=(CHAT_TLS_CERT="$run/tls/cert.pem" CHAT_TLS_KEY="$run/tls/key.pem")
        start_node tls-node-a "$NODE_A" "$server" CHAT_ADMIN_LISTEN="$ADMIN_A" "${tls_env[@]}"
        PID_A=$last_pid
        start_node tls-node-b "$NODE_B" "$server" CHAT_ADMIN_LISTEN="$ADMIN_B" "${tls_env[@]}"
        PID_B=$last_pid
        if wait_port 6100 60 && wait_port 6102 60 && alive "$PID_A" && alive "$PID_B"; then
            log "TLS node-a pid $PID_A, node-b pid $PID_B"
            PIDS="node-a=$PID_A,node-b=$PID_B"
            tls_ran=1
            step tls tls.json chat "${ops[@]}" --tls --ca-file "$run/tls/cert.pem" --pids "$PIDS" \
                --watch "$WATCH"
            check_nodes "tls-node-*.log"
        else
            log "the TLS nodes did not come up (see bench/run/tls-node-*.log)"
            failed+=("TLS nodes did not start")
        fi
    fi
fi

# Issue 19: one node on the embedded default (SQLite, the in-process broker), same-node
# one-to-one up to the first rate that fails. The node runs in bench/run/sqlite/ without a
# database or Redis URL, so it opens data/chat.db there, made afresh for each suite.
if [[ " $STEPS " == *" sqlite "* ]]; then
    log "restarting as one node on SQLite (the embedded default) in bench/run/sqlite"
    stop_nodes
    rm -rf "$run/sqlite"
    mkdir -p "$run/sqlite"
    sqlite_env=()
    for v in "${NODE_ENV[@]}"; do
        case "$v" in
            CHAT_DATABASE_URL=* | CHAT_REDIS_URL=* | CHAT_CHANNEL_PREFIX=*) ;;
            # The node's own default worker count (one per core), as `cargo run --bin
            # chat-server` runs it: the one worker per node of the two-node steps is for two
            # nodes sharing the cores, and one node alone would be held to one core.
            CHAT_WORKER_THREADS=*)
                if [[ -n ${BENCH_SQLITE_WORKERS:-} ]]; then
                    sqlite_env+=("CHAT_WORKER_THREADS=$BENCH_SQLITE_WORKERS")
                fi
                ;;
            *) sqlite_env+=("$v") ;;
        esac
    done
    env -C "$run/sqlite" -u RUST_LOG -u CHAT_DATABASE_URL -u CHAT_REDIS_URL "${sqlite_env[@]}" \
        CHAT_LISTEN="$NODE_A" CHAT_ADMIN_LISTEN="$ADMIN_A" CHAT_NODE_NAME=bench-sqlite \
        setsid "$server" >"$run/sqlite-node.log" 2>&1 </dev/null &
    PID_A=$!
    PID_B=$PID_A
    pids_started+=("$PID_A")
    if wait_port 6100 60 && alive "$PID_A"; then
        log "SQLite node pid $PID_A"
        step sqlite sqlite.json sweep --nodes "$NODE_A" --users 200 --rates "$RATES_SQLITE" "${timing[@]}" \
            --max-p99-ms 50 --stop-after-fail --pids "node=$PID_A"
        check_nodes "sqlite-node.log"
    else
        log "the SQLite node did not come up (see bench/run/sqlite-node.log)"
        failed+=("SQLite node did not start")
    fi
    stop_nodes
fi

# Issue 19: the bare append, with no node running, in a database of its own.
if [[ " $STEPS " == *" append "* ]]; then
    stop_nodes
    log "the bare append in $APPEND_DB (dropped, recreated, migrated by chat-server migrate)"
    mariadb -uroot -e "DROP DATABASE IF EXISTS \`$APPEND_DB\`"
    grant_db "$APPEND_DB"
    if env -u RUST_LOG CHAT_DATABASE_URL="$APPEND_URL" "$server" migrate >"$run/append-migrate.log" 2>&1; then
        step append append.json append --mysql-url "$APPEND_URL" --variants "$APPEND_VARIANTS" \
            --transactions "$APPEND_TXNS" ${MYSQL_PID:+--pids "mysql=$MYSQL_PID"}
    else
        log "chat-server migrate failed on $APPEND_DB (see bench/run/append-migrate.log)"
        failed+=("append: migrate failed")
    fi
fi

baseline_ran=0
if want_baseline; then
    # The same two steps on the baseline server: stop this commit's nodes, start the baseline's on
    # the same ports with the same settings. Same database: its migrations are a prefix of ours.
    log "switching both nodes to the baseline server (${baseline_rev:0:7})"
    stop_nodes
    start_node baseline-node-a "$NODE_A" "$baseline_server"
    PID_A=$last_pid
    start_node baseline-node-b "$NODE_B" "$baseline_server"
    PID_B=$last_pid
    if wait_port 6100 60 && wait_port 6102 60 && alive "$PID_A" && alive "$PID_B"; then
        log "baseline node-a pid $PID_A, node-b pid $PID_B"
        PIDS="node-a=$PID_A,node-b=$PID_B"
        if [ "$baseline_rev" = "$(git rev-parse --verify --quiet "2ee51e0^{commit}")" ]; then
            echo "at-most-once baseline (${baseline_rev:0:7})" >"$results/baseline.txt"
        else
            echo "baseline (${baseline_rev:0:7})" >"$results/baseline.txt"
        fi
        baseline_ran=1
        step cross-baseline cross-baseline.json sweep --nodes "$NODE_A,$NODE_B" --users 200 --cross 1 \
            --rates "$RATES_CROSS" "${timing[@]}" --max-p99-ms 50 --pids "$PIDS" --watch "$WATCH" \
            "${status[@]}"
        step group50-baseline group50-baseline.json sweep --mode group --nodes "$NODE_A,$NODE_B" \
            --group-size 50 --groups 4 --rates "$RATES_GROUP50" "${timing[@]}" --max-p99-ms 100 \
            --pids "$PIDS" --watch "$WATCH" "${status[@]}"
        check_nodes "baseline-node-*.log"
    else
        log "the baseline nodes did not come up (see bench/run/baseline-node-*.log)"
        failed+=("baseline nodes did not start")
    fi
fi
elapsed=$(($(date +%s) - started))

cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
mem_total=$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
if [ -n "$dirty" ]; then
    dirty=" (built with uncommitted changes in the shared work tree to: $dirty)"
else
    dirty=" (the built sources had no uncommitted changes)"
fi

mkdir -p "$(dirname "$OUT")"
{
    echo "# chat-cluster benchmark results"
    echo
    echo "Written by \`make bench\` (deploy/bench.sh); do not edit by hand — run it again."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- commit: \`$commit\`$dirty"
    echo "- machine: $(nproc) CPUs ($cpu_model), $mem_total memory, Linux $(uname -r)"
    echo "- everything on this one machine, sharing its $(nproc) cores: the bench, two chat-server nodes,"
    echo "  nginx ($(nginx -v 2>&1 | sed 's/^nginx version: //')), Redis ($(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')),"
    echo "  MySQL/MariaDB ($( (mariadb --version 2>/dev/null || mysql --version 2>/dev/null) | sed -n 's/.*Distrib \([^,]*\),.*/\1/p'))"
    echo "- suite time: ${elapsed} s; the machine was $background cores busy with other work just before"
    echo "  the suite started (see \"machine busy/idle cores\" in each table for the load during each run)"
    echo
    echo "## Set-up"
    echo
    echo "- Two release-build nodes, \`$NODE_A\` and \`$NODE_B\`, on MySQL \`$DB\` and Redis (channel prefix \`bench:\`),"
    echo "  nginx on \`$LB\` (deploy/nginx.conf with these ports)."
    echo "- Node settings that differ from the defaults, and why:"
    echo "  - \`CHAT_HASH_MEMORY_KIB=64 CHAT_HASH_ITERATIONS=1\` (\`CHAT_HASH_CONCURRENCY=2\`): cheap password"
    echo "    hashing, only so that registering and logging in thousands of users takes seconds; it is not on"
    echo "    the path of a message."
    echo "  - \`CHAT_RATE_PER_SEC=100000 CHAT_RATE_BURST=100000\`: the per-connection request limit (default 50/s)"
    echo "    raised above what the bench sends per connection (300 msgs/s per connection at 60,000 msgs/s over 200 users)."
    if [ "$WORKERS" = 0 ]; then
        echo "  - Runtime worker threads: one per core (the default)."
    else
        echo "  - \`CHAT_WORKER_THREADS=$WORKERS\`: runtime worker threads per node (default: one per core). Two nodes,"
        echo "    the bench, Redis and MySQL share the two cores; a second worker per node only adds cross-thread wake-ups."
    fi
    echo "  - Logging at the default level (\`info\`), open-file limit raised to $(ulimit -n)."
    if [ "$baseline_ran" = 1 ]; then
        echo "- Baseline, for A/B in the same run (\`BENCH_BASELINE\`, default 2ee51e0: the last at-most-once server,"
        echo "  which acknowledges and routes a chat without storing it): \`$baseline_rev\`"
        echo "  (\"$(git log -1 --format='%<(72,trunc)%s' "$baseline_rev" | sed 's/ *$//')\"), built from that commit alone"
        echo "  ($baseline_build). After this commit's steps the suite stops both nodes, starts two of the"
        echo "  baseline on the same ports with the same settings and database, and runs the cross-node"
        echo "  one-to-one and group-of-50 sweeps again: their sections show both, one table per path."
    else
        echo "- No baseline in this run (\`BENCH_BASELINE=$BASELINE\`, or neither cross nor group50 in \`BENCH_STEPS\`)."
    fi
    echo "- chat-bench (\`--threads $THREADS\`) registers its users with names unique to each run, logs them in"
    echo "  **without** the protocol extension (so no ACK per chat), spreads them over the addresses round robin,"
    echo "  and sends by the clock (open loop: R messages a second whatever the deliveries do). Each message's"
    echo "  text carries its run, sequence number and send time, padded to 64 bytes; a delivery is counted per"
    echo "  message and recipient (loss and duplicates are exact), latency is from hand-over to the bench's writer"
    echo "  until the recipient's read. \"late\" = arrived more than ${GRACE} s after the last send; \"lost\" = never"
    echo "  arrived (the bench keeps waiting while stragglers still come, at least one a second, up to 30 s more)."
    echo "  A rate passes with nothing lost, late, duplicated or misrouted and p99 under the bound."
    echo "- Group chat: the groups are created and joined on extension connections, which then log out; the"
    echo "  members log in again without the extension. \"last p99\" is the latency to the last member of a message."
    echo "- CPU: utime+stime from /proc of the node processes over the run (both nodes, Redis excluded) divided by"
    echo "  the deliveries (\"srv µs/msg\"), and cores busy on average for the nodes, nginx's worker, Redis, MySQL"
    echo "  and the bench itself (\"bench cores\": if it nears 1.0 with \`--threads 1\`, the generator is the limit)."
    echo "  \"srv kernel %\" is the nodes' system time share (system calls, the loopback TCP stack, softirqs)."
    echo "  \"mysql µs/msg\" is MySQL's CPU (all its threads, from /proc) per delivered message, like \"srv µs/msg\"."
    echo "  \"machine busy/idle cores\" is the whole machine over the run (/proc/stat): anything else running"
    echo "  on the machine at the time (a build, other tests) shows as busy cores no watched process accounts for;"
    echo "  \"other procs cores\" is what all other processes used, and the notes under a table name the busiest."
    echo "  Before each step (up to 60 s) and each rate (up to 30 s) the suite waits for the machine to be quiet."
    echo "- Operations (issue 12): both nodes run with an admin listener (\`CHAT_ADMIN_LISTEN=$ADMIN_A\`, \`$ADMIN_B\`)"
    echo "  serving /metrics and health. The metrics and tls steps run one cross-node one-to-one load at"
    echo "  $RATE_OPS msgs/s (\`BENCH_RATE_OPS\`): without scraping, then with curl scraping both nodes' /metrics"
    echo "  every second ($scrapes scrapes in that run), then over TLS after restarting both nodes with"
    echo "  \`CHAT_TLS_CERT\`/\`CHAT_TLS_KEY\` (a self-signed P-256 certificate made by openssl at run time;"
    echo "  chat-bench \`--tls --ca-file\`). The TLS run is the last of this commit's, before any baseline."
    echo "- Redis Cluster (issue 11): the rcluster step restarts both nodes on a Redis Cluster of 3 masters and"
    echo "  3 replicas the suite starts on 127.0.0.1:$REDIS_CLUSTER_PORT-$((REDIS_CLUSTER_PORT + 5)) (deploy/redis-cluster.sh, data under"
    echo "  bench/run/redis-cluster/) and runs the cross-node sweep at $RATES_RCLUSTER msgs/s, watching each Redis process."
    echo "- Issue 19: the cross-node sweep starts at 200 msgs/s; the steps on MySQL read its \`SHOW GLOBAL STATUS\`"
    echo "  before and after each rate (\`chat-bench --mysql-status\`). The sqlite step runs one node on the embedded"
    echo "  default (SQLite \`data/chat.db\` under bench/run/sqlite/, made afresh; the in-process broker) at"
    echo "  $RATES_SQLITE msgs/s, same-node, stopping at the first rate that fails. The append step (no node running)"
    echo "  migrates a fresh database \`$APPEND_DB\` with \`chat-server migrate\` and runs \`chat-bench append\`"
    echo "  there: $APPEND_VARIANTS (table:rows per transaction), $APPEND_TXNS transactions each."
    echo "- Idle: VmRSS of node-a after start-up (before the bench connects) and with $IDLE_USERS logged-in idle"
    echo "  connections (after a 10 s hold); the difference divided by the connections."
    echo
    "$bench" report --dir "$results"
    echo
    echo "## Warnings and errors in the nodes' logs"
    echo
    echo "Counted over the whole suite (bench/run/node-*.log, tls-node-*.log for the TLS nodes, and baseline-node-*.log"
    echo "for the baseline), fields stripped:"
    echo
    echo '```'
    for node in node-a node-b rcluster-node-a rcluster-node-b tls-node-a tls-node-b sqlite-node baseline-node-a baseline-node-b; do
        [ -f "$run/$node.log" ] || continue
        lines=$(grep -E ' (WARN|ERROR) ' "$run/$node.log" |
            sed -E 's/^[^ ]+ +(WARN|ERROR) +/\1 /; s/ [a-z_.]+=[^ ]+//g' | sort | uniq -c | sort -rn | head -n 8 || true)
        if [ -z "$lines" ]; then echo "$node: none"; else echo "$node:"; echo "$lines"; fi
    done
    echo '```'
    if [ "${#failed[@]}" -gt 0 ]; then
        echo
        echo "## Failed steps"
        echo
        for f in "${failed[@]}"; do echo "- $f"; done
    fi
} >"$OUT"
log "wrote $OUT"
if [ "${#failed[@]}" -gt 0 ]; then
    log "failed: ${failed[*]}"
    exit 1
fi
