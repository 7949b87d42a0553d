#!/usr/bin/env bash
# Benchmark: what QEMU user-mode emulation costs a RUN step. Not a test; CI
# never runs it. Run as root on an amd64 machine, from anywhere:
#
#     bash bench/emulation.sh                          # builds builder --release
#     BUILDER=/path/to/builder bash bench/emulation.sh     # a given binary
#
# Two contexts, the same Dockerfile: busybox copied in FROM scratch, then
#   RUN true                       (start-up: registration + QEMU start)
#   RUN i=0; while [ $i -lt N ] …  (a CPU-bound busybox shell loop, N =
#                                   BENCH_LOOP, default 200000)
#   RUN mkdir -p /w && for f in 1 … 200; do echo $f > /w/$f; cat /w/$f; done
#                                  (400 short process starts and files)
# built --no-cache BENCH_RUNS times (default 5) with this host's busybox
# (native) and with Debian's arm64 busybox-static for --platform linux/arm64
# (emulated). It prints the median of each step's time (rawjson
# elapsed_ms) and the ratio emulated/native.
#
# What it does to the machine: builds builder with `cargo build --release
# --locked` when BUILDER is not set; downloads busybox-static:arm64 into its
# temp dir when /var/cache/builder-tests/busybox-static_arm64.deb (what
# .ci/install fetches) is absent (needs `dpkg --add-architecture arm64`);
# everything lives in one temp dir, removed on exit. Needs qemu-user-static.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
RUNS=${BENCH_RUNS:-5}
LOOP=${BENCH_LOOP:-200000}
DEB=/var/cache/builder-tests/busybox-static_arm64.deb

. "$REPO/bench/lib.sh"

[[ $(uname -m) == x86_64 ]] || die "this benchmark emulates arm64 on an amd64 machine"
[[ -x /bin/busybox ]] || die "/bin/busybox is missing (apt-get install busybox-static)"
[[ -x /usr/bin/qemu-aarch64-static ]] || die "qemu-aarch64-static is missing (apt-get install qemu-user-static)"
ensure_builder

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [[ ! -f $DEB ]]; then
    log "downloading busybox-static:arm64"
    (cd "$WORK" && apt-get download -q busybox-static:arm64 >&2) || die "apt-get download failed"
    DEB=$(ls "$WORK"/busybox-static_*_arm64.deb)
fi
dpkg-deb -x "$DEB" "$WORK/arm64"

STEPS=(
    'RUN true'
    "RUN i=0; while [ \$i -lt $LOOP ]; do i=\$((i+1)); done"
    'RUN mkdir -p /w && for f in $(seq 1 200); do echo $f > /w/$f; cat /w/$f; done > /dev/null'
)
NAMES=(start loop processes)
for kind in native emulated; do
    mkdir -p "$WORK/$kind"
    if [[ $kind == native ]]; then
        cp /bin/busybox "$WORK/$kind/busybox"
    else
        cp "$WORK/arm64/bin/busybox" "$WORK/$kind/busybox"
    fi
    {
        printf 'FROM scratch\nCOPY busybox /bin/busybox\n'
        printf 'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        printf '%s\n' "${STEPS[@]}"
    } >"$WORK/$kind/Dockerfile"
done

# Builds context $1 (with the extra flags after it); appends each measured
# step's milliseconds to $WORK/ms-$1-<name>.
build() {
    local kind=$1
    shift
    BUILDER_ROOT=$WORK/store-$kind "$BUILDER" build --no-cache --network none --progress rawjson \
        "$@" "$WORK/$kind" >/dev/null 2>"$WORK/last.log" || {
        tail -n 30 "$WORK/last.log" >&2
        die "build failed"
    }
    local i
    for i in "${!STEPS[@]}"; do
        awk -v step="${STEPS[$i]}" '
            /"type":"step.started"/ && index($0, substr(step, 1, 9)) { match($0, /"id":[0-9]+/); want = substr($0, RSTART + 5, RLENGTH - 5) }
            /"type":"step.finished"/ {
                match($0, /"id":[0-9]+/); id = substr($0, RSTART + 5, RLENGTH - 5)
                match($0, /"elapsed_ms":[0-9]+/)
                if (id == want) print substr($0, RSTART + 13, RLENGTH - 13)
            }' "$WORK/last.log" >>"$WORK/ms-$kind-${NAMES[$i]}"
    done
}


log "$RUNS builds per kind, loop of $LOOP"
for ((r = 0; r < RUNS; r++)); do
    build native
    build emulated --platform linux/arm64
done

printf '%-10s %12s %12s %8s\n' step native emulated ratio
for name in "${NAMES[@]}"; do
    n=$(median <"$WORK/ms-native-$name")
    e=$(median <"$WORK/ms-emulated-$name")
    awk -v name="$name" -v n="$n" -v e="$e" \
        'BEGIN { printf "%-10s %9d ms %9d ms %7.1fx\n", name, n, e, (n > 0 ? e / n : 0) }'
done
