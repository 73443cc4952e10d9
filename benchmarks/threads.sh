#!/bin/sh
# Parallel accept sweep: builds benchmarks/c/threads.c into a temporary
# directory and runs N = 1 .. nproc threads on disjoint ranges for the
# bitmap (no-op primitive), TDX and SNP (Linux path, one vCPU per thread).
# One line per N: throughput, ratio to N x one thread, CPU time per byte
# relative to one thread (see threads.c).
#
#   benchmarks/threads.sh                       # defaults below
#   NMAX=4 ROUNDS=5 TDX_SIZE=64G benchmarks/threads.sh
#
# Sizes are guest bytes per thread (K/M/G/T suffix, multiple of 2 MiB); the
# defaults keep the whole sweep around a minute on 16 cores.  BACKING=2M
# runs the vendors with 2 MiB host backing; CHUNK=2M makes every
# ua_accept_memory call one unit (default: one call per thread).
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
NMAX=${NMAX:-$(nproc)}
ROUNDS=${ROUNDS:-3}
BITMAP_SIZE=${BITMAP_SIZE:-64T}
TDX_SIZE=${TDX_SIZE:-256G}
SNP_SIZE=${SNP_SIZE:-256G}
BACKING=${BACKING:-4K}
CC=${CC:-cc}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$CC" -O2 -pthread -I"$here/csrc/include" "$here/benchmarks/c/threads.c" "$here"/csrc/*.c \
    -o "$tmp/threads"

opts="-r $ROUNDS"
[ -n "${CHUNK:-}" ] && opts="$opts -c $CHUNK"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, N = 1-$NMAX, $ROUNDS rounds (median [min, max])"
"$tmp/threads" bitmap "1-$NMAX" "$BITMAP_SIZE" $opts
"$tmp/threads" tdx "1-$NMAX" "$TDX_SIZE" -b "$BACKING" $opts
"$tmp/threads" snp "1-$NMAX" "$SNP_SIZE" -b "$BACKING" $opts
