#!/usr/bin/env bash
# Build the libFuzzer harnesses (fuzz_*.c against ../csrc/*.c, ASan + UBSan,
# -fno-sanitize-recover=all) and run each one for a short fixed time from its
# seed corpus.  Any crash, sanitizer finding, leak, timeout or broken
# invariant fails the run (exit 1) after every harness had its turn; the
# input that did it is kept in $BUILD/artifacts/.  See docs/fuzzing.md.
#
#   bash fuzz/run-ci.sh
#
# Needs only bash, coreutils and clang with its libFuzzer and sanitizer
# runtimes (Debian: apt-get install clang); no make, no Python.
#   FUZZ_SECONDS   seconds per harness (default 12)
#   FUZZ_CC        compiler (default clang)
#   FUZZ_BUILD     build folder (default fuzz/build, ignored by git)
#   FUZZ_PREBUILT  a folder with the harnesses already built (make -C fuzz run)
# The flags are those of fuzz/Makefile; keep the two in step.
set -euo pipefail
cd "$(dirname "$0")"

FUZZ_SECONDS=${FUZZ_SECONDS:-12}
CC=${FUZZ_CC:-clang}
BUILD=${FUZZ_PREBUILT:-${FUZZ_BUILD:-$PWD/build}}
HARNESSES=(fuzz_table_parse fuzz_memmap fuzz_batch_ops fuzz_snp fuzz_tdx)

# -max_len per harness: room for every field the decoder reads (64 ops of a
# program, 96 raw descriptors, a 4 KiB bitmap) without wasting time on
# bytes the harness never looks at.
max_len() {
    case $1 in
        fuzz_table_parse|fuzz_memmap) echo 4096 ;;
        *) echo 1024 ;;
    esac
}

COMMON=(-std=c11 -g -O1 -fno-omit-frame-pointer -pthread -D_POSIX_C_SOURCE=200809L
        -Wall -Wextra -Wno-unused-parameter -I../csrc/include)
SAN=(-fsanitize=address,undefined -fno-sanitize-recover=all)

build() {
    if ! command -v "$CC" >/dev/null; then
        echo "run-ci.sh: $CC not found (Debian: apt-get install clang)" >&2
        exit 1
    fi
    mkdir -p "$BUILD/obj"
    # libFuzzer's runtime ships apart from clang on some distributions
    local probe="$BUILD/probe"
    printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
        'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n > 99; }' \
        >"$probe.c"
    if ! "$CC" "${SAN[@]}" -fsanitize=fuzzer "$probe.c" -o "$probe" 2>"$probe.log"; then
        cat "$probe.log" >&2
        echo "run-ci.sh: $CC cannot link libFuzzer with ASan/UBSan; install its runtime" \
             "(Debian: libclang-rt-<version>-dev, a recommended package of clang)" >&2
        exit 1
    fi
    local pids=() objs=() src obj
    for src in ../csrc/*.c; do
        obj="$BUILD/obj/$(basename "${src%.c}").o"
        objs+=("$obj")
        "$CC" "${COMMON[@]}" "${SAN[@]}" -fsanitize=fuzzer-no-link \
            -fsanitize-coverage-ignorelist="$PWD/coverage-ignore.txt" -DUA_BUILDING_LIBRARY=1 \
            -c "$src" -o "$obj" &
        pids+=($!)
    done
    local failed=0 pid
    for pid in "${pids[@]}"; do wait "$pid" || failed=1; done
    if [ "$failed" = 1 ]; then
        echo "run-ci.sh: building the library failed" >&2
        exit 1
    fi
    for h in "${HARNESSES[@]}"; do
        "$CC" "${COMMON[@]}" "${SAN[@]}" -fsanitize=fuzzer "$h.c" "${objs[@]}" -o "$BUILD/$h"
    done
}

if [ -z "${FUZZ_PREBUILT:-}" ]; then
    build
fi

mkdir -p "$BUILD/artifacts"
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
for h in "${HARNESSES[@]}"; do
    mkdir -p "$scratch/$h"
    log="$BUILD/$h.log"
    # the scratch folder comes first: new inputs go there, corpus/ stays as it is
    if "$BUILD/$h" -max_total_time="$FUZZ_SECONDS" -max_len="$(max_len "$h")" -timeout=25 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$BUILD/artifacts/$h-" \
        "$scratch/$h" "corpus/$h" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        echo "$h: ${runs:-?} inputs in ${FUZZ_SECONDS} s, no finding"
    else
        status=1
        echo "$h: FAILED (log: $log); the last lines:"
        tail -n 40 "$log"
        ls "$BUILD/artifacts/$h-"* 2>/dev/null | sed "s|^|  reproduce with: $BUILD/$h |" || true
    fi
done
exit "$status"
