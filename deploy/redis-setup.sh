#!/usr/bin/env bash
# Makes sure a Redis answers on 127.0.0.1:6379 for the cluster and its tests.
# Idempotent: does nothing if one already answers; starts a throw-away, non-persistent
# redis-server if it is installed; otherwise says what to install and fails.
set -euo pipefail

HOST=127.0.0.1
PORT=6379

answers() {
    command -v redis-cli >/dev/null 2>&1 &&
        [ "$(redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null || true)" = "PONG" ]
}

if answers; then
    echo "redis: already answering on $HOST:$PORT"
    exit 0
fi

if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    echo "redis: redis-server is not installed. Install it with:" >&2
    echo "    apt-get install -y redis-server" >&2
    exit 1
fi

redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$PORT" --save "" --appendonly no

for _ in $(seq 1 50); do
    if answers; then
        echo "redis: started on $HOST:$PORT"
        exit 0
    fi
    sleep 0.2
done

echo "redis: started redis-server but it does not answer on $HOST:$PORT after 10 s" >&2
exit 1
