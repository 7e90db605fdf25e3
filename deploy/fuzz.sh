#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for a while each and says how many inputs ran.
#
#   deploy/fuzz.sh [SECONDS] [TARGET...]     default: 60 seconds, every target
#   FUZZ_SANITIZER=none deploy/fuzz.sh 600   without AddressSanitizer
#
# Installs cargo-fuzz when it is missing. Only a stable toolchain exists here,
# so the nightly flags cargo-fuzz passes are allowed with RUSTC_BOOTSTRAP=1.
# One fuzzing process at a time (no -jobs/-workers): the machine is shared.
# The corpus grows in fuzz/corpus/<target>/ (git tracks only the seed-* files);
# a finding is written to fuzz/artifacts/<target>/ and makes this exit 1.
set -euo pipefail

seconds=${1:-60}
shift || true
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
	echo "fuzz.sh: SECONDS must be a positive number, got '$seconds'" >&2
	exit 2
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
	echo "fuzz.sh: installing cargo-fuzz"
	cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
sanitizer=${FUZZ_SANITIZER:-address}
if (($# > 0)); then
	targets=("$@")
else
	mapfile -t targets < <(cargo fuzz list)
fi

mkdir -p target
failed=()
for target in "${targets[@]}"; do
	log="target/fuzz-$target.log"
	echo "== $target: ${seconds}s, sanitizer $sanitizer (log: fuzz/$log)"
	status=0
	cargo fuzz run --sanitizer "$sanitizer" "$target" -- \
		-max_total_time="$seconds" -timeout=10 -print_final_stats=1 >"$log" 2>&1 || status=$?
	grep -E '^#[0-9]+[[:space:]]+DONE|^stat::number_of_executed_units' "$log" || true
	if ((status != 0)); then
		failed+=("$target")
		echo "== $target: FINDING (exit $status)"
		grep -E 'panicked at|^SUMMARY|ERROR: libFuzzer|Test unit written to' "$log" || tail -n 30 "$log"
	else
		echo "== $target: no finding"
	fi
done

if ((${#failed[@]} > 0)); then
	echo "fuzz.sh: findings in ${failed[*]}; reproduce with" \
		"RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>" >&2
	exit 1
fi
