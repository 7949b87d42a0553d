#!/usr/bin/env bash
# Benchmark: the apt-heavy docker-library build, buildpack-deps:bookworm, with
# builder, BuildKit (DOCKER_BUILDKIT=1 /usr/bin/docker build) and Buildah side
# by side, `--no-cache`, the base image already local. Not a test; CI never
# runs it. Run as root from the checkout:
#
#     bash bench/buildpack_deps.sh
#
# It needs the Debian mirror once, to prepare (kept in BENCH_CACHE, default
# /var/cache/builder-bench):
#   - a bookworm root made by `debootstrap --variant=minbase` with what the
#     buildpack-deps `curl` and `scm` images add (ca-certificates curl gnupg
#     netbase sq wget git mercurial openssh-client subversion procps): the
#     base image, as `buildpack-deps:bookworm-scm` is;
#   - every .deb the buildpack-deps `bookworm` RUN installs, in a flat apt
#     repository served on 127.0.0.1 during the runs, so the timed builds
#     read no network but loopback and all three tools fetch the same bytes.
# The base is pushed to the peers' registry (127.0.0.1:5000) and each tool
# pulls it in an untimed first build. The builds run with `--network host`
# (to reach the repository on loopback).
#
# Prints the median wall time of BENCH_RUNS builds (default 3) per tool, the
# ratio to builder's, and builder's peak resident memory. BENCH_TOOLS
# ("builder buildkit buildah") picks the tools.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
. "$REPO/bench/lib.sh"

RUNS=${BENCH_RUNS:-3}
TOOLS=${BENCH_TOOLS:-builder buildkit buildah}
CACHE=${BENCH_CACHE:-/var/cache/builder-bench}
REG=127.0.0.1:5000
BASE=$REG/bench-bookworm-scm:latest
SUITE=bookworm
MIRROR=${BENCH_MIRROR:-http://deb.debian.org/debian}

[[ $EUID -eq 0 ]] || die "run as root (debootstrap, chroot, and the peers build as root)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
[[ -x /usr/bin/time ]] || die "/usr/bin/time is missing (apt-get install time)"

# The packages of buildpack-deps' bookworm Dockerfile (docker-library/buildpack-deps).
BIG=(autoconf automake bzip2 default-libmysqlclient-dev dpkg-dev file g++ gcc imagemagick
    libbz2-dev libc6-dev libcurl4-openssl-dev libdb-dev libevent-dev libffi-dev libgdbm-dev
    libglib2.0-dev libgmp-dev libjpeg-dev libkrb5-dev liblzma-dev libmagickcore-dev
    libmagickwand-dev libmaxminddb-dev libncurses5-dev libncursesw5-dev libpng-dev libpq-dev
    libreadline-dev libsqlite3-dev libssl-dev libtool libwebp-dev libxml2-dev libxslt-dev
    libyaml-dev make patch unzip xz-utils zlib1g-dev)
# What its curl and scm parents add to the minimal system.
BASE_PKGS=(ca-certificates curl gnupg netbase sq wget git mercurial openssh-client subversion procps)

# in_root CMD...: runs CMD in the prepared root with /proc, /sys, /dev and the
# host's resolv.conf, unmounting them after.
in_root() {
    local root=$CACHE/root status=0
    mount -t proc proc "$root/proc"
    mount --rbind /sys "$root/sys"
    mount --rbind /dev "$root/dev"
    cp /etc/resolv.conf "$root/etc/resolv.conf"
    chroot "$root" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@" || status=$?
    umount -l "$root/dev" "$root/sys" "$root/proc"
    return "$status"
}

prepare() {
    command -v debootstrap >/dev/null || die "debootstrap is missing (apt-get install debootstrap)"
    command -v dpkg-scanpackages >/dev/null || die "dpkg-scanpackages is missing (apt-get install dpkg-dev)"
    mkdir -p "$CACHE"
    rm -rf "$CACHE/repo" "$CACHE/base.tar"
    if [[ ! -x $CACHE/root/usr/bin/apt-get ]]; then
        rm -rf "$CACHE/root"
        log "debootstrap $SUITE into $CACHE/root (needs $MIRROR)"
        debootstrap --variant=minbase "$SUITE" "$CACHE/root" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
            die "debootstrap failed (see $CACHE/debootstrap.log)"
    fi
    log "installing the curl and scm layers' packages"
    in_root apt-get update -qq
    in_root apt-get install -y -qq --no-install-recommends "${BASE_PKGS[@]}" >/dev/null
    log "downloading the bookworm RUN's packages into a local repository"
    in_root apt-get install -y -qq --no-install-recommends --download-only "${BIG[@]}" >/dev/null
    mkdir -p "$CACHE/repo"
    mv "$CACHE"/root/var/cache/apt/archives/*.deb "$CACHE/repo/"
    (cd "$CACHE/repo" && dpkg-scanpackages --multiversion . /dev/null 2>/dev/null >Packages)
    in_root apt-get clean
    rm -rf "$CACHE"/root/var/lib/apt/lists/*
    : >"$CACHE/root/etc/resolv.conf"
    # The base image's Dockerfile adds a sources.list naming the run's repository.
    rm -f "$CACHE/root/etc/apt/sources.list" "$CACHE/root/etc/apt/sources.list.d/"*
    tar -C "$CACHE/root" --numeric-owner -cf "$CACHE/base.tar" .
    touch "$CACHE/ready"
}

[[ -f $CACHE/ready ]] || prepare

PEERS=$REPO/../shared/difftest/peers-setup.sh
[[ -f $PEERS ]] || die "$PEERS not found (the shared difftest folder beside the checkout)"
# Also the registry on 127.0.0.1:5000 that holds the base image.
log "setting up the peers (bash $PEERS)"
bash "$PEERS" >&2 || die "peers-setup.sh failed"
ensure_builder

WORK=$(mktemp -d "${TMPDIR:-/tmp}/builder-bpd-bench.XXXXXX")
SERVER=
cleanup() {
    local status=$?
    set +e
    [[ -n $SERVER ]] && kill "$SERVER" 2>/dev/null
    if [[ -d $WORK/buildah ]]; then
        buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" rmi --all --force >/dev/null 2>&1
    fi
    /usr/bin/docker image rm -f bench-bpd "$BASE" >/dev/null 2>&1
    awk -v d="$WORK" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$WORK/logs" "$WORK/base" "$WORK/ctx"

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$CACHE/repo" "$PORT" >"$WORK/logs/repo.log" 2>&1 &
SERVER=$!

log "pushing the base image to $BASE"
# The root's sources.list names the repository's port, which changes per run.
mkdir -p "$WORK/base/etc/apt"
printf 'deb [trusted=yes] http://127.0.0.1:%s/ ./\n' "$PORT" >"$WORK/base/etc/apt/sources.list"
ln "$CACHE/base.tar" "$WORK/base/base.tar" 2>/dev/null || cp "$CACHE/base.tar" "$WORK/base/base.tar"
printf 'FROM scratch\nADD base.tar /\nCOPY etc/apt/sources.list /etc/apt/sources.list\nCMD ["bash"]\n' >"$WORK/base/Dockerfile"
"$BUILDER" --root "$WORK/pusher" build --progress plain --push -t "$BASE" "$WORK/base" >"$WORK/logs/base.log" 2>&1 ||
    { tail -n 20 "$WORK/logs/base.log" >&2; die "pushing the base image failed"; }

{
    printf 'FROM %s\nRUN set -ex; \\\n\tapt-get update; \\\n\tapt-get install -y --no-install-recommends \\\n' "$BASE"
    printf '\t\t%s \\\n' "${BIG[@]}"
    printf '\t; \\\n\trm -rf /var/lib/apt/lists/*\n'
} >"$WORK/ctx/Dockerfile"

cmd() {
    case $1 in
    builder) CMD=("$BUILDER" --root "$WORK/builder" build --progress plain --network host --no-cache -t bench-bpd "$WORK/ctx") ;;
    buildkit) CMD=(env DOCKER_BUILDKIT=1 /usr/bin/docker build --progress plain --network host --no-cache -t bench-bpd "$WORK/ctx") ;;
    buildah) CMD=(buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/run" bud --layers --tls-verify=false --network host --no-cache -t bench-bpd "$WORK/ctx") ;;
    *) die "unknown tool $1" ;;
    esac
}

# measure TOOL: "median_seconds peak_kb" over RUNS timed builds after one
# untimed build (which pulls the base).
measure() {
    local tool=$1 i times=$WORK/logs/$1.times
    cmd "$tool"
    "${CMD[@]}" >"$WORK/logs/$tool.first.log" 2>&1 ||
        { tail -n 20 "$WORK/logs/$tool.first.log" >&2; die "$tool failed"; }
    : >"$times"
    for ((i = 0; i < RUNS; i++)); do
        /usr/bin/time -f '%e %M' -o "$WORK/logs/time" "${CMD[@]}" >"$WORK/logs/$tool.log" 2>&1 ||
            { tail -n 20 "$WORK/logs/$tool.log" >&2; die "$tool failed"; }
        cat "$WORK/logs/time" >>"$times"
    done
    printf '%s %s\n' "$(cut -d' ' -f1 "$times" | median)" "$(cut -d' ' -f2 "$times" | sort -g | tail -n1)"
}

declare -A RESULT
for tool in $TOOLS; do
    log "$tool: buildpack-deps:$SUITE --no-cache ($RUNS runs)"
    RESULT[$tool]=$(measure "$tool")
done

printf '\nbuildpack-deps:%s, --no-cache, base local, %s packages from a loopback repository\n' "$SUITE" "$(grep -c '^Package:' "$CACHE/repo/Packages")"
printf '%s cores, kernel %s, load %s; median of %s builds; ratio = tool / builder\n\n' \
    "$(nproc)" "$(uname -r)" "$(cut -d' ' -f1-3 /proc/loadavg)" "$RUNS"
printf '%-9s %10s %8s %12s\n' tool median ratio peak-RSS
read -r base _ <<<"${RESULT[builder]:-0 0}"
for tool in $TOOLS; do
    read -r med kb <<<"${RESULT[$tool]}"
    mem=$(awk -v k="$kb" 'BEGIN { printf "%.0f MiB", k / 1024 }')
    [[ $tool == builder ]] || mem=-
    printf '%-9s %9.3fs %8s %12s\n' "$tool" "$med" \
        "$(awk -v a="$med" -v b="$base" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }')" "$mem"
done
