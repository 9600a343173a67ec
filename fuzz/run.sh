#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each, on stable Rust:
#
#   bash fuzz/run.sh SECONDS [TARGET...]
#
# Installs cargo-fuzz if it is missing, builds every target once, replays
# the known crash inputs of fuzz/regressions/TARGET/, then fuzzes each
# target from its seeds (fuzz/seeds/TARGET/) and what earlier runs kept
# (fuzz/corpus/TARGET/). Exits non-zero if any target crashes, leaks, times
# out or runs out of memory; the reproducer is in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -lt 1 ] || ! [[ $1 =~ ^[0-9]+$ ]]; then
    echo "usage: bash fuzz/run.sh SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift
all=(frame_decoder request_parser token_parser config_parse replay_store_reader)
targets=("${@:-${all[@]}}")

# cargo-fuzz passes -Z flags (sanitizer, coverage instrumentation) to rustc;
# RUSTC_BOOTSTRAP lets a stable toolchain accept them.
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz

# One build of every target, in fuzz/target; `cargo fuzz run` reuses it
# when given the same options. 16 codegen units build in half the time of
# cargo-fuzz's default of 1, and the targets run about as fast.
build=(--fuzz-dir fuzz --codegen-units "${FUZZ_CODEGEN_UNITS:-16}")
cargo fuzz build "${build[@]}"

failed=()
for target in "${targets[@]}"; do
    corpus=fuzz/corpus/$target
    mkdir -p "$corpus" "fuzz/artifacts/$target"
    options=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=2048 -print_final_stats=1)
    if [ -f "fuzz/dict/$target.dict" ]; then
        options+=(-dict="fuzz/dict/$target.dict")
    fi
    # Crashes found before must stay fixed.
    if [ -d "fuzz/regressions/$target" ] && [ -n "$(ls -A "fuzz/regressions/$target")" ]; then
        echo "== $target: replaying fuzz/regressions/$target"
        if ! cargo fuzz run "${build[@]}" "$target" "fuzz/regressions/$target"/* -- -runs=1; then
            failed+=("$target (regression)")
            continue
        fi
    fi
    echo "== $target: fuzzing for ${seconds}s"
    # New inputs go to the first folder; the seeds are only read.
    if ! cargo fuzz run "${build[@]}" "$target" "$corpus" "fuzz/seeds/$target" -- "${options[@]}"; then
        failed+=("$target")
    fi
done

if ((${#failed[@]})); then
    echo "fuzz: FAILED: ${failed[*]}; reproducers are in fuzz/artifacts/ (see fuzz/README.md)" >&2
    exit 1
fi
echo "fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"
