#!/usr/bin/env bash
# A first build on a fresh store (a CI runner's) whose base image has a big
# layer: the time from nothing to the RUN done, which is the pull plus the
# unpacking of the base's layers into snapshots.
#
#   bench/pull_unpack.sh [RUNS] [MIB]
#
# Starts Debian's docker-registry on a free 127.0.0.1 port, pushes (with
# skopeo) a base built by builder itself: busybox, then one layer of about
# MIB MiB (default 150) of /usr files (compressible as real layers are),
# then times RUNS (default 5) builds of `FROM base` + `RUN` each with a
# fresh --root and prints the median. BUILDER names the binary to time
# (default: a release build of this checkout); BASELINE names another one
# (an older build) to time too, its runs alternating with BUILDER's. Needs
# busybox-static, docker-registry and skopeo. Everything lives in one temp
# dir removed on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
. "$REPO/bench/lib.sh"

RUNS=${1:-5}
MIB=${2:-150}
for tool in docker-registry skopeo; do
    command -v "$tool" >/dev/null || die "$tool is missing (apt-get install $tool)"
done
[[ -x /bin/busybox ]] || die "/bin/busybox is missing (apt-get install busybox-static)"
ensure_builder

WORK=$(mktemp -d)
REGISTRY_PID=
cleanup() {
    [[ -n $REGISTRY_PID ]] && kill "$REGISTRY_PID" 2>/dev/null && wait "$REGISTRY_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$WORK/registry"
cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: 127.0.0.1:$PORT
EOF
docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/log" 2>&1 &
REGISTRY_PID=$!
for _ in $(seq 50); do
    curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$PORT/v2/" >/dev/null || die "docker-registry did not come up: $(cat "$WORK/registry/log")"

log "making a base with a ~$MIB MiB layer"
mkdir -p "$WORK/base/big"
cp /bin/busybox "$WORK/base/busybox"
# Whole files from /usr until MIB MiB: real files, so the layer compresses
# as real layers do.
find /usr -xdev -type f -size -8M -print0 2>/dev/null | sort -z |
    python3 -c '
import os, shutil, sys
limit, dest, total = int(sys.argv[1]) << 20, sys.argv[2], 0
for path in sys.stdin.buffer.read().split(b"\0"):
    if not path or total >= limit:
        continue
    try:
        size = os.path.getsize(path)
        target = os.path.join(dest.encode(), path.lstrip(b"/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(path, target)
        total += size
    except OSError:
        pass
' "$MIB" "$WORK/base/big"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nCOPY big /big\n' >"$WORK/base/Dockerfile"
"$BUILDER" --root "$WORK/base-store" build --progress=quiet \
    -o "type=oci,dest=$WORK/base.tar" "$WORK/base" >/dev/null
mkdir -p "$WORK/layout" && tar -xf "$WORK/base.tar" -C "$WORK/layout"
skopeo --insecure-policy copy --quiet --dest-tls-verify=false \
    "oci:$WORK/layout" "docker://127.0.0.1:$PORT/big:latest"
du -sh "$WORK/registry/storage" >&2

mkdir -p "$WORK/app"
printf 'FROM 127.0.0.1:%s/big:latest\nRUN ["/bin/busybox", "sh", "-c", "/bin/busybox du -sk /big > /size"]\n' "$PORT" \
    >"$WORK/app/Dockerfile"
# time_build BINARY: seconds of one first build with a fresh store.
time_build() {
    rm -rf "$WORK/root"
    local start end
    start=$(date +%s.%N)
    "$1" --root "$WORK/root" build --progress=plain "$WORK/app" >"$WORK/run.log" 2>&1 ||
        die "the build failed: $(cat "$WORK/run.log")"
    end=$(date +%s.%N)
    echo "$end - $start" | bc
}
binaries=("$BUILDER")
[[ -n ${BASELINE:-} ]] && binaries+=("$BASELINE")
declare -A times
for i in $(seq "$RUNS"); do
    for binary in "${binaries[@]}"; do
        t=$(time_build "$binary")
        log "run $i, $binary: ${t}s"
        times[$binary]+="$t "
    done
done
[[ -n ${SHOW_LOG:-} ]] && cat "$WORK/run.log" >&2
for binary in "${binaries[@]}"; do
    printf 'first build, %s MiB base layer, %s: median %ss of %s runs\n' "$MIB" "$binary" \
        "$(printf '%s\n' ${times[$binary]} | median)" "$RUNS"
done
