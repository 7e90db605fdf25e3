#!/usr/bin/env bash
# Active health checks for nginx OSS (whose stream module has none): polls each node's
# GET /readyz every second and keeps an upstream file in which a not-ready node is `down`,
# reloading nginx whenever it changes. Run it beside nginx (a systemd service with
# Restart=always), and include the file in nginx.conf's stream block instead of a literal
# upstream:   include /etc/nginx/chat-upstream.conf;
#
#   readyz-watch.sh UPSTREAM_FILE NODE_ADDR=ADMIN_ADDR...
#   readyz-watch.sh /etc/nginx/chat-upstream.conf 10.0.0.1:6000=10.0.0.1:9100 10.0.0.2:6000=10.0.0.2:9100
set -euo pipefail
out=${1:?usage: readyz-watch.sh UPSTREAM_FILE NODE=ADMIN...}
shift
[ $# -gt 0 ] || { echo "readyz-watch.sh: name at least one NODE=ADMIN pair" >&2; exit 2; }
last=""
while true; do
    conf="upstream chat_nodes {"$'\n'
    for pair in "$@"; do
        node=${pair%%=*} admin=${pair#*=}
        if curl -fsS -m 2 -o /dev/null "http://$admin/readyz"; then
            conf+="    server $node max_fails=3 fail_timeout=30s;"$'\n'
        else
            conf+="    server $node down;"$'\n'
        fi
    done
    conf+="}"$'\n'
    if [ "$conf" != "$last" ]; then
        printf '%s' "$conf" > "$out.tmp" && mv "$out.tmp" "$out"
        nginx -s reload || echo "readyz-watch.sh: nginx reload failed" >&2
        last=$conf
    fi
    sleep 1
done
