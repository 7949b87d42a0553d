#!/usr/bin/env bash
# Benchmark: builder, BuildKit (DOCKER_BUILDKIT=1 /usr/bin/docker build) and
# Buildah (buildah bud --layers) side by side on this machine, on the cases of
# issue #15. Not a test; CI never runs it. Run as root from the checkout:
#
#     bash bench/real_builds.sh
#
# Cases (each tool builds the same Dockerfile from the same context):
#   ctx-noop   a context of BENCH_CTX_FILES files (default 30 000, about
#              4 KB each, 120 MB) copied with `COPY . /app/`, rebuilt with
#              nothing changed (every step cached);
#   ctx-edit   the same, one file rewritten before each rebuild;
#   run-big    `--no-cache` build of one RUN writing 200 MB of random bytes
#              and 20 000 small files on 127.0.0.1:5000/busybox:latest,
#              named with -t only (builder compresses nothing: the store
#              keeps the layer uncompressed);
#   run-push   builder only: the same with `--push` to a docker-registry the
#              script starts on a free 127.0.0.1 port (the layer is gzipped
#              for the push); the report adds `gzip -5` (and `pigz -5`,
#              `zstd -3 -T0` when installed) timed alone on that layer's tar,
#              and the push phase (run-push - run-big) against `pigz -5` on
#              all cores (issue #15's goal: within 10%); that difference
#              carries the RUN's own noise, so the push is also timed alone:
#              `builder push` of run-big's image to a new repository, the
#              store's compressed copies (variants) dropped before each run.
# Prints per case and tool the median wall time of BENCH_RUNS runs (default
# 5), its ratio to builder's, and the peak resident memory of the tool's own
# process (/usr/bin/time -v; for docker that is the client, BuildKit runs in
# dockerd, so its memory is not comparable and is shown as -).
#
# What it does to the machine: unless BENCH_TOOLS=builder, runs
# ../shared/difftest/peers-setup.sh (installs buildah, docker.io, a registry
# on 127.0.0.1:5000 holding busybox; idempotent); builds builder with
# `cargo build --release --locked` (or uses BUILDER=path), and keeps
# everything else in one temp dir removed on exit (the registry it starts
# is stopped). Docker images it tags (bench-*) are removed at the end.
# BENCH_TOOLS="builder buildah" leaves BuildKit out (and so on);
# BENCH_CASES="ctx-noop ctx-edit" runs only those cases (the ctx cases need
# no registry: then none is checked or started, and no compressor timed).
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
RUNS=${BENCH_RUNS:-5}
NFILES=${BENCH_CTX_FILES:-30000}
TOOLS=${BENCH_TOOLS:-builder buildkit buildah}
CASES=(${BENCH_CASES:-ctx-noop ctx-edit run-big run-push})
REG=127.0.0.1:5000

. "$REPO/bench/lib.sh"
RUNCASES=false
for case in "${CASES[@]}"; do
    case $case in
    ctx-noop | ctx-edit) ;;
    run-big | run-push) RUNCASES=true ;;
    *) die "unknown case '$case' in BENCH_CASES (ctx-noop, ctx-edit, run-big, run-push)" ;;
    esac
done
[[ $EUID -eq 0 ]] || die "run as root (the peers' set-up installs packages; buildah and dockerd build as root)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
[[ $NFILES =~ ^[1-9][0-9]*$ ]] || die "BENCH_CTX_FILES must be a positive integer, got '$NFILES'"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"

if [[ $TOOLS != builder ]]; then
    PEERS=$REPO/../shared/difftest/peers-setup.sh
    [[ -f $PEERS ]] || die "$PEERS not found (the shared difftest folder beside the checkout)"
    log "setting up the peers (bash $PEERS)"
    bash "$PEERS" >&2 || die "peers-setup.sh failed"
fi
if $RUNCASES; then
    curl -fsS -o /dev/null -H 'Accept: application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json' \
        "http://$REG/v2/busybox/manifests/latest" ||
        die "$REG/busybox:latest is not there (bash ../shared/difftest/peers-setup.sh puts it there)"
    [[ -x /usr/bin/docker-registry ]] || die "/usr/bin/docker-registry is missing (apt-get install docker-registry)"
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/builder-real-bench.XXXXXX")
cleanup() {
    local status=$?
    set +e
    if [[ -d $WORK/buildah ]]; then
        buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" rmi --all --force >/dev/null 2>&1
    fi
    [[ -n ${REGISTRY_PID:-} ]] && kill "$REGISTRY_PID" && wait "$REGISTRY_PID"
    [[ $TOOLS == *buildkit* ]] && /usr/bin/docker image rm -f bench-ctx bench-run >/dev/null 2>&1
    awk -v d="$WORK" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$WORK/logs"

ensure_builder

# A registry of our own to push to (127.0.0.1:5000 is only read).
if $RUNCASES; then
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    PUSHREG=127.0.0.1:$PORT
    mkdir -p "$WORK/registry"
    cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $WORK/registry/storage }, delete: { enabled: true } }
http: { addr: $PUSHREG }
EOF
    /usr/bin/docker-registry serve "$WORK/registry/config.yml" >"$WORK/logs/registry.log" 2>&1 &
    REGISTRY_PID=$!
    for _ in $(seq 100); do
        curl -fsS -o /dev/null "http://$PUSHREG/v2/" && break
        sleep 0.1
    done
    curl -fsS -o /dev/null "http://$PUSHREG/v2/" || die "docker-registry did not start: $(cat "$WORK/logs/registry.log")"
fi

# --- contexts ----------------------------------------------------------------

log "writing a context of $NFILES files"
CTX=$WORK/ctx
mkdir -p "$CTX"
python3 - "$CTX" "$NFILES" <<'EOF'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 100))
    if i % 100 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d" % i), "wb") as f:
        f.write(os.urandom(4000))
EOF
printf 'FROM scratch\nCOPY . /app/\n' >"$CTX/Dockerfile"

RUNCTX=$WORK/run
mkdir -p "$RUNCTX"
cat >"$RUNCTX/Dockerfile" <<EOF
FROM $REG/busybox:latest
RUN dd if=/dev/urandom of=/big bs=1048576 count=200 2>/dev/null && mkdir /small && cd /small && i=0 && while [ \$i -lt 20000 ]; do echo \$i > f\$i; i=\$((i+1)); done
EOF

# --- tools -------------------------------------------------------------------

# cmd TOOL CASE: the command line (an array in CMD) building CASE with TOOL.
cmd() {
    local tool=$1 case=$2 ctx=$CTX tag=bench-ctx nocache=()
    local push=()
    if [[ $case == run-big || $case == run-push ]]; then
        ctx=$RUNCTX tag=bench-run nocache=(--no-cache)
    fi
    if [[ $case == run-push ]]; then
        tag=$PUSHREG/bench-run:latest push=(--push)
    fi
    case $tool in
    builder) CMD=("$BUILDER" --root "$WORK/builder" build --progress plain "${nocache[@]}" "${push[@]}" -t "$tag" "$ctx") ;;
    buildkit) CMD=(env DOCKER_BUILDKIT=1 /usr/bin/docker build --progress plain "${nocache[@]}" -t "$tag" "$ctx") ;;
    buildah) CMD=(buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" bud --layers --tls-verify=false "${nocache[@]}" -t "$tag" "$ctx") ;;
    *) die "unknown tool $tool" ;;
    esac
}

# measure TOOL CASE: prints "median_seconds peak_kb" over RUNS timed runs
# after one untimed run.
measure() {
    local tool=$1 case=$2 i times=$WORK/logs/$1-$2.times
    cmd "$tool" "$case"
    "${CMD[@]}" >"$WORK/logs/$tool-$case.first.log" 2>&1 ||
        { tail -n 20 "$WORK/logs/$tool-$case.first.log" >&2; die "$tool $case failed"; }
    : >"$times"
    for ((i = 0; i < RUNS; i++)); do
        if [[ $case == ctx-edit ]]; then
            printf '%s %s\n' "$tool" "$i" >>"$CTX/d000/f00000"
        fi
        /usr/bin/time -f '%e %M' -o "$WORK/logs/time" "${CMD[@]}" >"$WORK/logs/$tool-$case.log" 2>&1 ||
            { tail -n 20 "$WORK/logs/$tool-$case.log" >&2; die "$tool $case failed"; }
        cat "$WORK/logs/time" >>"$times"
    done
    sort -g "$times" | awk '{ t[NR] = $1; if ($2 > m) m = $2 } END {
        med = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
        printf "%.3f %d\n", med, m }'
}

declare -A RESULT
for case in "${CASES[@]}"; do
    for tool in $TOOLS; do
        [[ $case == run-push && $tool != builder ]] && continue
        log "$tool: $case ($RUNS runs)"
        RESULT[$tool/$case]=$(measure "$tool" "$case")
    done
done

# The push alone: run-big's image compressed and sent, RUNS times, each to a
# new repository with the compressed copies of earlier pushes dropped.
drop_variants() {
    local entry hex
    for entry in "$WORK/builder/variants"/*/*; do
        [[ -f $entry ]] || continue
        hex=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["digest"].split(":")[1])' "$entry")
        rm -f "$WORK/builder/blobs/sha256/$hex" "$entry"
    done
}
PUSH_ALONE=
if [[ " ${CASES[*]} " == *" run-big "* && " $TOOLS " == *" builder "* ]]; then
    log "builder push of run-big's image ($RUNS runs)"
    for ((i = 0; i < RUNS; i++)); do
        drop_variants
        /usr/bin/time -f '%e' -o "$WORK/logs/time" "$BUILDER" --root "$WORK/builder" push \
            bench-run "$PUSHREG/bench-push-$i:latest" >"$WORK/logs/push.log" 2>&1 ||
            { tail -n 20 "$WORK/logs/push.log" >&2; die "builder push failed"; }
        cat "$WORK/logs/time"
    done >"$WORK/logs/push-alone"
    PUSH_ALONE=$(median <"$WORK/logs/push-alone")
fi

# The compressors alone on the RUN layer's tar (the store's largest plain
# tar: builds store layers so; the gzip variants pushes made are beside it).
COMPRESSORS=()
if $RUNCASES && [[ " $TOOLS " == *" builder "* ]]; then
    LAYER=$(find "$WORK/builder/blobs/sha256" -type f -size +1M -printf '%s %p\n' | sort -n |
        while read -r _ blob; do
            [[ $(head -c2 "$blob" | od -An -tx1 | tr -d ' \n') == 1f8b ]] || echo "$blob"
        done | tail -n1)
    if [[ -z $LAYER ]]; then
        # A builder that compressed while building: its largest layer, unpacked.
        gzip -dc "$(find "$WORK/builder/blobs/sha256" -type f -printf '%s %p\n' | sort -n | tail -n1 | cut -d' ' -f2)" \
            >"$WORK/layer.tar" || die "no layer tar in the store"
        LAYER=$WORK/layer.tar
    fi
    COMPRESSORS+=("gzip -5 -c")
    command -v pigz >/dev/null && COMPRESSORS+=("pigz -5 -c")
    command -v zstd >/dev/null && COMPRESSORS+=("zstd -3 -T0 -c")
fi
declare -A ALONE
for compressor in "${COMPRESSORS[@]}"; do
    log "$compressor on the layer tar ($RUNS runs)"
    for ((i = 0; i < RUNS; i++)); do
        # shellcheck disable=SC2086 # the compressor's words
        /usr/bin/time -f '%e' -o "$WORK/logs/time" $compressor "$LAYER" >/dev/null
        cat "$WORK/logs/time"
    done >"$WORK/logs/alone"
    ALONE[$compressor]=$(median <"$WORK/logs/alone")
done

# --- report --------------------------------------------------------------------

printf '\nbuilder vs BuildKit (docker %s) vs Buildah %s on %s, %s cores, kernel %s, load %s\n' \
    "$(/usr/bin/docker version --format '{{.Server.Version}}' 2>/dev/null || echo '?')" \
    "$(buildah --version 2>/dev/null | awk '{print $3}' || echo '?')" \
    "$(grep -oP '^PRETTY_NAME="?\K[^"]*' /etc/os-release)" "$(nproc)" "$(uname -r)" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"
printf 'context: %s files; median of %s runs; ratio = tool / builder; peak RSS of the tool process\n\n' "$NFILES" "$RUNS"
printf '%-10s %-9s %10s %8s %12s\n' case tool median ratio peak-RSS
for case in "${CASES[@]}"; do
    read -r base _ <<<"${RESULT[builder/$case]:-0 0}"
    for tool in $TOOLS; do
        [[ -n ${RESULT[$tool/$case]:-} ]] || continue
        read -r med kb <<<"${RESULT[$tool/$case]}"
        mem=$(awk -v k="$kb" 'BEGIN { printf "%.0f MiB", k / 1024 }')
        [[ $tool == buildkit ]] && mem=-
        printf '%-10s %-9s %9.3fs %8s %12s\n' "$case" "$tool" "$med" \
            "$(awk -v a="$med" -v b="$base" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')" "$mem"
    done
done
if ((${#COMPRESSORS[@]})); then
    printf '\ncompressors alone on the RUN layer tar (%s):\n' "$(du -h "$LAYER" | cut -f1)"
    for compressor in "${COMPRESSORS[@]}"; do
        printf '%-16s %9.3fs\n' "${compressor% -c}" "${ALONE[$compressor]}"
    done
    # The push's own cost (run-push - run-big) against gzip on all cores.
    read -r big _ <<<"${RESULT[builder/run-big]:-0 0}"
    read -r pushed _ <<<"${RESULT[builder/run-push]:-0 0}"
    allcores=${ALONE["pigz -5 -c"]:-}
    if [[ -n $allcores && $big != 0 && $pushed != 0 ]]; then
        printf '\npush phase (run-push - run-big) %.3fs = %.2fx pigz -5 on %s cores\n' \
            "$(awk -v a="$pushed" -v b="$big" 'BEGIN { print a - b }')" \
            "$(awk -v a="$pushed" -v b="$big" -v c="$allcores" 'BEGIN { printf "%.2f", (a - b) / c }')" "$(nproc)"
    fi
    if [[ -n $allcores && -n $PUSH_ALONE ]]; then
        printf 'push alone (builder push, compress + upload) %.3fs = %.2fx pigz -5 on %s cores\n' \
            "$PUSH_ALONE" "$(awk -v a="$PUSH_ALONE" -v c="$allcores" 'BEGIN { printf "%.2f", a / c }')" "$(nproc)"
    fi
fi
