#!/usr/bin/env bash
# Makes sure the terminal tools the console tests drive the client with are
# installed (Debian packages): tmux (a terminal whose screen the tests read back,
# tests/tests/console_burst.rs) and script from util-linux (a pseudo-terminal,
# tests/tests/console_terminal.rs). Idempotent; installs with apt-get as root,
# otherwise says what to install and fails.
set -euo pipefail

# command -> Debian package that provides it
declare -A PACKAGE=([tmux]=tmux [script]=bsdutils)

missing=()
for cmd in tmux script; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("${PACKAGE[$cmd]}")
done
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "tools-setup: ${missing[*]} missing; install with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "tools-setup: installing ${missing[*]} (apt-get)..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
for cmd in tmux script; do
    if ! command -v "$cmd" >/dev/null 2>&1; then
        echo "tools-setup: installation failed: $cmd is still missing" >&2
        exit 1
    fi
done
