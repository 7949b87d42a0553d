#!/usr/bin/env bash
# Benchmark: `RUN --mount=type=bind,source=.,target=/src` of a large build
# context (the common Go/Rust pattern). Not a test; CI never runs it. Run as
# root from anywhere:
#
#     bash bench/bind_mount.sh                       # builds builder --release
#     BUILDER=/path/to/builder bash bench/bind_mount.sh   # a given binary
#
# The context holds BENCH_FILES (default 20000) files of BENCH_FILE_KB
# (default 10) KiB of random bytes in 100 directories (200 MB by default),
# plus /bin/busybox. The Dockerfile copies busybox in and runs one step that
# binds the whole context and lists it. Measured, BENCH_RUNS times each
# (default 3), median/min/max wall time:
#   cold:    a build into a fresh, empty store;
#   cached:  a rebuild into the filled store (every step a cache hit);
#   touched: a rebuild after `touch` on one bound file (same content, so the
#            step is still a cache hit; only that file is read again);
#   edited:  a rebuild after one bound file changed (the bind step runs).
# "Cold" means an empty store, not an empty page cache.
#
# What it does to the machine: builds builder with `cargo build --release
# --locked` when BUILDER is not set; everything else lives in one temp dir,
# removed on exit.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
FILES=${BENCH_FILES:-20000}
FILE_KB=${BENCH_FILE_KB:-10}
RUNS=${BENCH_RUNS:-3}

. "$REPO/bench/lib.sh"

[[ -x /bin/busybox ]] || die "/bin/busybox is missing (apt-get install busybox-static)"
ensure_builder

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CTX=$WORK/ctx
mkdir -p "$CTX/src"
cp /bin/busybox "$CTX/busybox"
cat >"$CTX/Dockerfile" <<'EOF'
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "--install", "-s", "/bin"]
RUN --mount=type=bind,source=.,target=/src find /src -type f | wc -l > /count
EOF
log "making the context: $FILES files of $FILE_KB KiB"
dirs=100
per_dir=$(((FILES + dirs - 1) / dirs))
for ((d = 0; d < dirs; d++)); do
    mkdir "$CTX/src/d$d"
    head -c $((per_dir * FILE_KB * 1024)) /dev/urandom |
        (cd "$CTX/src/d$d" && split -b "${FILE_KB}k" -a 4 -d - f)
done
ONE=$CTX/src/d0/f0000

# Runs one build against store $1, logging to $WORK/last.log; prints seconds.
build() {
    local start end
    start=$(date +%s.%N)
    BUILDER_ROOT=$1 "$BUILDER" build --progress plain "$CTX" >"$WORK/last.log" 2>&1 ||
        { cat "$WORK/last.log" >&2; die "build failed"; }
    end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}

# Prints "median min max" of the numbers on stdin.
stats() {
    sort -g | awk '{ v[NR] = $1 } END { printf "%.2f %.2f %.2f\n", v[int((NR + 1) / 2)], v[1], v[NR] }'
}

declare -A TIMES
for ((r = 0; r < RUNS; r++)); do
    store=$WORK/store-$r
    TIMES[cold]+="$(build "$store") "
    TIMES[cached]+="$(build "$store") "
    grep -q "CACHED" "$WORK/last.log" || die "the rebuild was not cached"
    touch "$ONE"
    TIMES[touched]+="$(build "$store") "
    printf 'x' >>"$ONE"
    TIMES[edited]+="$(build "$store") "
    rm -rf "$store"
done

printf '%-8s %8s %8s %8s   (%s files, %s KiB each, %s runs, %s)\n' \
    phase median min max "$FILES" "$FILE_KB" "$RUNS" "$BUILDER"
for phase in cold cached touched edited; do
    read -r median min max < <(tr ' ' '\n' <<<"${TIMES[$phase]}" | grep . | stats)
    printf '%-8s %7ss %7ss %7ss\n' "$phase" "$median" "$min" "$max"
done
