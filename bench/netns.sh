#!/usr/bin/env bash
# Benchmark: what a RUN step's own network namespace costs. Not a test; CI
# never runs it. Run as root from anywhere:
#
#     bash bench/netns.sh                          # builds builder --release
#     BUILDER=/path/to/builder bash bench/netns.sh     # a given binary
#
# The Dockerfile copies busybox in, then runs BENCH_STEPS (default 50) steps
# `RUN true N`. It is built with --no-cache BENCH_RUNS times (default 5) for
# each network, in turn:
#   default: a network namespace of the step's own, slirp4netns attached;
#   none:    a network namespace with loopback only (no slirp4netns);
#   host:    the host's network (no namespace at all).
# Per network it prints the median time of one `RUN true` step (each step's
# elapsed_ms from --progress rawjson, all runs pooled) and the median wall
# time of a whole build; the per-step cost of the namespace is the
# difference of the step medians against `host`.
#
# What it does to the machine: builds builder with `cargo build --release
# --locked` when BUILDER is not set; everything else lives in one temp dir,
# removed on exit. Needs slirp4netns (apt-get install slirp4netns).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
STEPS=${BENCH_STEPS:-50}
RUNS=${BENCH_RUNS:-5}
NETWORKS=(default none host)

. "$REPO/bench/lib.sh"

[[ -x /bin/busybox ]] || die "/bin/busybox is missing (apt-get install busybox-static)"
command -v slirp4netns >/dev/null || die "slirp4netns is missing (apt-get install slirp4netns)"
ensure_builder

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
CTX=$WORK/ctx
mkdir -p "$CTX"
cp /bin/busybox "$CTX/busybox"
{
    printf 'FROM scratch\nCOPY busybox /bin/busybox\n'
    printf 'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    for ((i = 1; i <= STEPS; i++)); do printf 'RUN true %d\n' "$i"; done
} >"$CTX/Dockerfile"

# Builds with --network $1 into store $2; appends each `RUN true` step's
# milliseconds to $WORK/steps-$1 and prints the build's wall seconds.
build() {
    local start end
    start=$(date +%s.%N)
    BUILDER_ROOT=$2 "$BUILDER" build --no-cache --network "$1" --progress rawjson "$CTX" \
        >/dev/null 2>"$WORK/last.log" || { cat "$WORK/last.log" >&2; die "build failed"; }
    end=$(date +%s.%N)
    # Step ids of the `RUN true` steps, then their elapsed_ms.
    awk '
        /"type":"step.started"/ && /RUN true / { match($0, /"id":[0-9]+/); ids[substr($0, RSTART + 5, RLENGTH - 5)] = 1 }
        /"type":"step.finished"/ {
            match($0, /"id":[0-9]+/); id = substr($0, RSTART + 5, RLENGTH - 5)
            match($0, /"elapsed_ms":[0-9]+/)
            if (id in ids) print substr($0, RSTART + 13, RLENGTH - 13)
        }' "$WORK/last.log" >>"$WORK/steps-$1"
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }'
}


declare -A WALL
log "$RUNS builds of $STEPS RUN steps per network"
for ((r = 0; r < RUNS; r++)); do
    for net in "${NETWORKS[@]}"; do
        WALL[$net]+="$(build "$net" "$WORK/store") "
    done
done

for net in "${NETWORKS[@]}"; do
    count=$(wc -l <"$WORK/steps-$net")
    [[ $count -eq $((STEPS * RUNS)) ]] || die "$net: $count step times, expected $((STEPS * RUNS))"
done
host_step=$(median <"$WORK/steps-host")
printf '%-8s %12s %14s %12s   (%s steps x %s runs, %s)\n' \
    network "step median" "vs host/step" "build median" "$STEPS" "$RUNS" "$BUILDER"
for net in "${NETWORKS[@]}"; do
    step=$(median <"$WORK/steps-$net")
    wall=$(tr ' ' '\n' <<<"${WALL[$net]}" | grep . | median)
    printf '%-8s %10s ms %11s ms %10s s\n' "$net" "$step" "$((step - host_step))" "$wall"
done
