#!/usr/bin/env bash
# Makes sure nginx with the stream module is installed (Debian packages).
# Installs nothing in /etc that we use: the project runs nginx with its own config.
set -euo pipefail

module=/usr/lib/nginx/modules/ngx_stream_module.so
if command -v nginx >/dev/null 2>&1 && [ -f "$module" ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "nginx with the stream module is missing; install it with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y nginx libnginx-mod-stream" >&2
    exit 1
fi
echo "installing nginx and its stream module (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq nginx libnginx-mod-stream >/dev/null
# The package starts a system nginx on port 80 on some systems; we do not use it.
if command -v service >/dev/null 2>&1; then service nginx stop >/dev/null 2>&1 || true; fi
pkill -f 'nginx: master process /usr/sbin/nginx' 2>/dev/null || true
if ! command -v nginx >/dev/null 2>&1 || [ ! -f "$module" ]; then
    echo "nginx installation failed: need the nginx binary and $module" >&2
    exit 1
fi
