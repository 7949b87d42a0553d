#!/usr/bin/env bash
# Benchmark: a two-platform build (`--platform linux/amd64,linux/arm64`, one
# OCI index) with builder and with Buildah (`buildah build --platform …
# --manifest NAME`), side by side. Not a test; CI never runs it. Run as root
# on an amd64 machine, from anywhere:
#
#     bash bench/multiplatform.sh                           # builds builder --release
#     BUILDER=/path/to/builder bash bench/multiplatform.sh  # a given binary
#
# The fixture: FROM a two-arch busybox index, then
#   RUN uname -m > /arch && for i in $(seq 1 100); do echo $i > /f$i; done
#   COPY hello.txt /hello.txt
# built BENCH_RUNS times (default 5) per tool without cache (builder
# --no-cache into an OCI layout directory; buildah --layers=false --no-cache
# into its storage and a fresh manifest list). The arm64 RUN runs under
# QEMU user-mode emulation in both; the base is pulled once, before the timed
# runs. Before timing, it checks that each tool's index has an arm64 image
# whose /arch is aarch64 (read back with skopeo --override-arch arm64). It
# prints the median, min and max wall time per tool and the ratio.
# What emulation costs one RUN against a native one is bench/emulation.sh's
# job (not repeated here).
#
# What it does to the machine:
#   - starts Debian's docker-registry on a free 127.0.0.1 port with its
#     storage in the temp dir and pushes the base there (busybox of this host
#     for amd64, /var/cache/builder-tests/busybox-static_arm64.deb's for
#     arm64, made into an index by builder itself and copied with skopeo);
#   - Buildah needs the HOST's binfmt_misc to run arm64 binaries (builder
#     registers QEMU in each step's own user namespace and never needs it):
#     when /proc/sys/fs/binfmt_misc is not mounted the script mounts it, and
#     when no qemu-aarch64 entry is registered it registers
#     /usr/bin/qemu-aarch64-static with the F flag; on exit it removes the
#     entry and unmounts what it added, and only that;
#   - builds builder with `cargo build --release --locked` when BUILDER is
#     not set; everything else lives in one temp dir, removed on exit.
# Needs buildah, skopeo, docker-registry, qemu-user-static, busybox-static.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)
RUNS=${BENCH_RUNS:-5}
DEB=/var/cache/builder-tests/busybox-static_arm64.deb
QEMU=/usr/bin/qemu-aarch64-static
BINFMT=/proc/sys/fs/binfmt_misc

. "$REPO/bench/lib.sh"

[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "BENCH_RUNS must be a positive integer, got '$RUNS'"
[[ $EUID -eq 0 ]] || die "run as root (buildah builds as root here, and the host binfmt_misc registration needs it)"
[[ $(uname -m) == x86_64 ]] || die "this benchmark emulates arm64 on an amd64 machine"
[[ -x /bin/busybox ]] || die "/bin/busybox is missing (apt-get install busybox-static)"
[[ -x $QEMU ]] || die "$QEMU is missing (apt-get install qemu-user-static)"
[[ -f $DEB ]] || die "$DEB is missing (.ci/install fetches it)"
for tool in buildah skopeo docker-registry; do
    command -v "$tool" >/dev/null || die "$tool is missing (bash ../shared/difftest/peers-setup.sh, or apt-get install $tool)"
done
ensure_builder
log "builder: $BUILDER"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/builder-multiplatform.XXXXXX")
REGISTRY_PID=
MOUNTED_BINFMT=
REGISTERED_QEMU=
BUILDAH=(buildah --root "$WORK/buildah/root" --runroot "$WORK/buildah/runroot" --storage-driver vfs)
cleanup() {
    local status=$?
    set +e
    [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
    if [[ -d $WORK/buildah/root ]]; then
        "${BUILDAH[@]}" rm --all >/dev/null 2>&1
        "${BUILDAH[@]}" rmi --all --force >/dev/null 2>&1
    fi
    if [[ -n $REGISTERED_QEMU ]]; then
        echo -1 >"$BINFMT/qemu-aarch64" && log "removed the host binfmt_misc entry qemu-aarch64"
    fi
    if [[ -n $MOUNTED_BINFMT ]]; then
        umount "$BINFMT" && log "unmounted $BINFMT"
    fi
    awk -v d="$WORK" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | xargs -r umount -l
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- a registry of our own holding the two-arch base -------------------------

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: 127.0.0.1:$PORT
  secret: builder-bench
EOF
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null || die "docker-registry did not come up: $(cat "$WORK/registry/log")"
BASE=127.0.0.1:$PORT/bench/busybox-multi:latest

log "making the two-arch base $BASE"
dpkg-deb -x "$DEB" "$WORK/arm64-deb"
mkdir -p "$WORK/base"
for arch in amd64 arm64; do
    root=$WORK/base/rootfs-$arch
    mkdir -p "$root/bin"
    if [[ $arch == amd64 ]]; then cp /bin/busybox "$root/bin/busybox"; else cp "$WORK/arm64-deb/bin/busybox" "$root/bin/busybox"; fi
    for applet in $(/bin/busybox --list); do
        [[ $applet == busybox ]] || ln -s busybox "$root/bin/$applet"
    done
done
printf 'FROM scratch\nARG TARGETARCH\nCOPY rootfs-${TARGETARCH}/ /\nENV PATH=/bin\nCMD ["sh"]\n' >"$WORK/base/Dockerfile"
BUILDER_ROOT=$WORK/store-base "$BUILDER" build --progress quiet --platform linux/amd64,linux/arm64 \
    -o "type=oci,tar=false,dest=$WORK/base-layout" "$WORK/base" >/dev/null 2>"$WORK/base.log" ||
    die "making the base failed: $(tail -n 20 "$WORK/base.log")"
skopeo --insecure-policy copy --quiet --all --dest-tls-verify=false \
    "oci:$WORK/base-layout" "docker://$BASE" >&2 || die "skopeo could not push the base"

# --- host binfmt_misc for buildah ---------------------------------------------

if ! grep -q "^binfmt_misc $BINFMT " /proc/mounts; then
    mount -t binfmt_misc binfmt_misc "$BINFMT" || die "could not mount binfmt_misc on $BINFMT"
    MOUNTED_BINFMT=1
    log "mounted binfmt_misc on $BINFMT (for buildah)"
fi
if [[ ! -e $BINFMT/qemu-aarch64 ]]; then
    printf '%s' ':qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:'"$QEMU"':F' \
        >"$BINFMT/register" || die "could not register $QEMU with binfmt_misc"
    REGISTERED_QEMU=1
    log "registered $QEMU as the host's qemu-aarch64 binfmt_misc entry, flag F (for buildah; removed on exit)"
else
    grep -q '^flags: .*F' "$BINFMT/qemu-aarch64" ||
        log "warning: the host's qemu-aarch64 entry has no F flag; buildah's arm64 RUN may not find the interpreter"
fi

# --- the fixture and the timed builds -----------------------------------------

mkdir -p "$WORK/ctx"
echo hello >"$WORK/ctx/hello.txt"
cat >"$WORK/ctx/Dockerfile" <<EOF
FROM $BASE
RUN uname -m > /arch && for i in \$(seq 1 100); do echo \$i > /f\$i; done
COPY hello.txt /hello.txt
EOF
mkdir -p "$WORK/buildah/root" "$WORK/buildah/runroot"
printf '[registries.insecure]\nregistries = ["127.0.0.1:%s"]\n' "$PORT" >"$WORK/registries.conf"
PLATFORMS=linux/amd64,linux/arm64

now() { date +%s%N; }

builder_build() {
    rm -rf "$WORK/out"
    BUILDER_ROOT=$WORK/store "$BUILDER" build --no-cache --progress quiet --platform "$PLATFORMS" \
        -o "type=oci,tar=false,dest=$WORK/out" "$WORK/ctx" >/dev/null 2>"$WORK/last.log" ||
        die "builder failed: $(tail -n 30 "$WORK/last.log")"
}
buildah_build() {
    "${BUILDAH[@]}" manifest rm bench-multi >/dev/null 2>&1 || true
    "${BUILDAH[@]}" --registries-conf "$WORK/registries.conf" build --no-cache --layers=false \
        --tls-verify=false --platform "$PLATFORMS" --manifest bench-multi "$WORK/ctx" \
        >"$WORK/last.log" 2>&1 || die "buildah failed: $(tail -n 30 "$WORK/last.log")"
}

log "warm-up (pulls the base into each tool's store)"
builder_build
buildah_build
# Prints /arch of the arm64 image of the index in OCI layout $1, read
# back with skopeo --override-arch arm64.
arm64_arch() {
    local dir=$WORK/check-$(basename "$1") digest
    skopeo --insecure-policy --override-arch arm64 copy --quiet "oci:$1" "dir:$dir" >&2
    for digest in $(python3 -c 'import json, sys; print(*(l["digest"].split(":")[1] for l in json.load(open(sys.argv[1]))["layers"]))' \
        "$dir/manifest.json"); do
        tar -xOf "$dir/$digest" arch 2>/dev/null || true
    done
}
"${BUILDAH[@]}" manifest push --all --quiet bench-multi "oci:$WORK/buildah-out" >&2
for out in out buildah-out; do
    [[ $(arm64_arch "$WORK/$out") == aarch64 ]] || die "the arm64 image in $out has no /arch = aarch64"
done

log "$RUNS builds per tool"
for ((r = 0; r < RUNS; r++)); do
    t=$(now)
    builder_build
    echo $((($(now) - t) / 1000000)) >>"$WORK/ms-builder"
    t=$(now)
    buildah_build
    echo $((($(now) - t) / 1000000)) >>"$WORK/ms-buildah"
done

stats() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[1], v[NR] }'; }
read -r bm bmin bmax < <(stats <"$WORK/ms-builder")
read -r hm hmin hmax < <(stats <"$WORK/ms-buildah")
printf '%-8s %10s %10s %10s\n' tool median min max
printf '%-8s %7d ms %7d ms %7d ms\n' builder "$bm" "$bmin" "$bmax" buildah "$hm" "$hmin" "$hmax"
awk -v b="$bm" -v h="$hm" 'BEGIN { printf "buildah/builder (median): %.2fx\n", (b > 0 ? h / b : 0) }'
