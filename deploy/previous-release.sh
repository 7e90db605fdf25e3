#!/usr/bin/env bash
# Builds the previous release's chat-server, for the rolling-upgrade drill
# (tests/tests/drill_rolling_upgrade.rs) and for anyone who wants to run it:
#   deploy/previous-release.sh          build it unless it is built already
#   deploy/previous-release.sh path     print where its binary is (built or not)
# The release is named by deploy/releases/previous ("<tag> <full commit sha>"), a file
# committed with the code, so a clone without tags builds the same thing. Its source is
# `git archive <sha>` into deploy/run/releases/<sha>/src, built there (debug, as the tests'
# own binaries) with its own target dir deploy/run/releases/<sha>/target. A built binary is
# kept: the next run skips the build. A cold build takes a few minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

release_file=$root/deploy/releases/previous
read -r tag sha _ <"$release_file" || true
if [ -z "${tag:-}" ] || [ -z "${sha:-}" ] || ! [[ "$sha" =~ ^[0-9a-f]{40}$ ]]; then
    echo "previous-release: $release_file must hold '<tag> <40-hex commit sha>'" >&2
    exit 2
fi
dir=$root/deploy/run/releases/$sha
binary=$dir/target/debug/chat-server

if [ "${1:-}" = path ]; then
    echo "$binary"
    exit 0
fi
if [ -x "$binary" ]; then
    echo "previous-release: $tag ($sha) already built: $binary"
    exit 0
fi

if ! git -C "$root" cat-file -e "$sha^{commit}" 2>/dev/null; then
    echo "previous-release: commit $sha ($tag) is not in this clone;" >&2
    echo "previous-release: a shallow clone needs 'git fetch --unshallow' (or a fetch of the tag $tag)" >&2
    exit 1
fi

# Extract afresh (a half-extracted tree from an interrupted run is thrown away); file times
# are the extraction's, so nothing is mistaken for up to date.
rm -rf "$dir/src.tmp"
mkdir -p "$dir/src.tmp"
git -C "$root" archive "$sha" | tar -x -m -C "$dir/src.tmp"
rm -rf "$dir/src"
mv "$dir/src.tmp" "$dir/src"

echo "previous-release: building $tag ($sha) in $dir"
started=$SECONDS
cargo build --locked --bin chat-server --manifest-path "$dir/src/Cargo.toml" --target-dir "$dir/target"
echo "previous-release: $tag built in $((SECONDS - started)) s: $binary"
