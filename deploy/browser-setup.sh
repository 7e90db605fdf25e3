#!/usr/bin/env bash
# Makes sure the browser tests (tests/tests/web_browser.rs, scenarios in tests/web/) can run:
# Debian's Chromium at /usr/bin/chromium (and a colour emoji font), Node.js with npm, and playwright-core from the
# committed tests/web/package.json and package-lock.json (`npm ci`). Playwright's own browser
# download is never used: the scenarios launch /usr/bin/chromium. Idempotent; installs with
# apt-get as root, otherwise says what to install and fails.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
# Colour emoji in the screenshots (without it an emoji renders as an empty box).
[ -e /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ] || missing+=(fonts-noto-color-emoji)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "browser-setup: ${missing[*]} missing; install with:" >&2
        echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
    echo "browser-setup: installing ${missing[*]} (apt-get)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
for path in /usr/bin/chromium "$(command -v node || echo node)" "$(command -v npm || echo npm)"; do
    if [ ! -x "$path" ]; then
        echo "browser-setup: installation failed: $path is still missing" >&2
        exit 1
    fi
done

if [ ! -d tests/web/node_modules/playwright-core ]; then
    echo "browser-setup: npm ci in tests/web (playwright-core)..." >&2
    # No browser download: the tests use Debian's Chromium.
    (cd tests/web && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
