#!/usr/bin/env bash
# Benchmark: builder against Buildah (`buildah bud --layers`) on this machine.
# Not a test; CI never runs it. Run as root from anywhere:
#
#     bash bench/build_vs_buildah.sh
#
# For every fixture under fixtures/ whose stages start only from scratch or
# from other stages (no registry needed) it measures
#   cold:   a build into a fresh, empty store (builder: a new --root;
#           buildah: a new --root/--runroot storage), and
#   cached: a rebuild into the store the previous build filled (every step a
#           cache hit),
# and prints median, min and max wall time per tool, the buildah/builder
# ratios and the targets: a cached rebuild under 0.1 s and at least 5x faster
# than buildah's, a cold build no slower than buildah's. "Cold" means an
# empty store, not an empty page cache: both tools read the same warm context.
#
# What it does to the machine:
#   - installs buildah, runc, hyperfine (and busybox-static) with apt-get
#     when they are missing and apt has a candidate for them;
#   - builds builder with `cargo build --release --locked` (honours
#     CARGO_TARGET_DIR);
#   - everything else lives in one temp dir (contexts with /bin/busybox
#     copied in and generated files, the stores, logs), which it unmounts and
#     removes on exit, also on failure or Ctrl-C.
# Buildah's runtime: the default one is tried first; where it cannot run here
# (Debian's crun refuses some kernels' cgroup set-ups) the script writes a
# containers.conf with `runtime = "runc"` into its temp dir and points
# CONTAINERS_CONF at it for its own buildah calls only; /etc/containers is
# never changed. Storage driver: overlay, else vfs.
#
# Knobs (environment): BENCH_RUNS (cached runs per tool, default 10),
# BENCH_COLD_RUNS (cold runs per tool, default 5), BENCH_FILES (files the
# bench-many-files context gets, default 3000), BENCH_FIXTURES (space-separated
# fixture names, default: every fixture that needs no registry).
# Exits non-zero when a tool is missing and cannot be installed, when buildah
# cannot build here (with buildah's reason), or when a build fails.
set -euo pipefail

SELF=$(readlink -f "${BASH_SOURCE[0]}")
REPO=$(cd "$(dirname "$SELF")/.." && pwd)

log() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'build_vs_buildah: error: %s\n' "$*" >&2
    exit 1
}

# Unmounts every mount at or below $1, deepest first.
unmount_under() {
    local dir=$1 mnt
    awk -v d="$dir" '{ if ($5 == d || index($5, d "/") == 1) print $5 }' /proc/self/mountinfo |
        sort -r | while read -r mnt; do
        umount "$mnt" 2>/dev/null || umount -l "$mnt"
    done
}

# Empties each directory (unmounting what is mounted below it first).
reset_dirs() {
    local dir
    for dir in "$@"; do
        unmount_under "$dir"
        rm -rf "$dir"
        mkdir -p "$dir"
    done
}

# Internal entry point: hyperfine's --prepare runs this between cold runs.
if [[ ${1:-} == --reset ]]; then
    shift
    reset_dirs "$@"
    exit 0
fi

RUNS=${BENCH_RUNS:-10}
COLD_RUNS=${BENCH_COLD_RUNS:-5}
NFILES=${BENCH_FILES:-3000}
for knob in RUNS COLD_RUNS NFILES; do
    [[ ${!knob} =~ ^[1-9][0-9]*$ ]] || die "BENCH_${knob/NFILES/FILES} must be a positive integer, got '${!knob}'"
done

[[ $EUID -eq 0 ]] || die "run as root: it installs packages with apt-get, and buildah builds here as root (rootless buildah needs a subuid/subgid set-up this script does not make)"
command -v cargo >/dev/null || die "cargo is not on PATH (needed to build builder in release mode)"

# --- tools -----------------------------------------------------------------

# Prints the apt candidate version of package $1, or nothing.
apt_candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ { if ($2 != "(none)") print $2 }'
}

install_missing() {
    local want=() pkg
    command -v buildah >/dev/null || want+=(buildah)
    command -v runc >/dev/null || want+=(runc)
    command -v hyperfine >/dev/null || want+=(hyperfine)
    [[ -x /bin/busybox ]] || want+=(busybox-static)
    local install=()
    for pkg in "${want[@]}"; do
        if [[ -n $(apt_candidate "$pkg") ]]; then
            install+=("$pkg")
        elif [[ $pkg == hyperfine ]]; then
            log "hyperfine is not installed and apt has no candidate: timing with date +%s.%N instead"
        else
            die "$pkg is not installed and apt-cache policy shows no candidate for it"
        fi
    done
    if ((${#install[@]})); then
        log "installing ${install[*]} with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y "${install[@]}" >&2 ||
            die "apt-get install -y ${install[*]} failed"
    fi
    # ldd fails on a static binary.
    ! ldd /bin/busybox >/dev/null 2>&1 ||
        die "/bin/busybox is not a static binary (the fixtures copy it into images FROM scratch); install busybox-static"
}
install_missing

# --- temp dir and clean-up --------------------------------------------------

WORK=$(mktemp -d "${TMPDIR:-/tmp}/builder-bench.XXXXXX")
# Buildah storages made so far, as "root runroot driver" lines.
BUILDAH_STORES=()

cleanup() {
    local status=$? line root runroot driver
    set +e
    for line in "${BUILDAH_STORES[@]}"; do
        read -r root runroot driver <<<"$line"
        [[ -d $root ]] || continue
        buildah --root "$root" --runroot "$runroot" --storage-driver "$driver" rm --all >/dev/null 2>&1
        buildah --root "$root" --runroot "$runroot" --storage-driver "$driver" rmi --all --force >/dev/null 2>&1
    done
    unmount_under "$WORK"
    rm -rf "$WORK"
    if grep -q " $WORK" /proc/self/mountinfo; then
        printf 'build_vs_buildah: warning: mounts below %s remain:\n' "$WORK" >&2
        grep " $WORK" /proc/self/mountinfo >&2
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$WORK/logs" "$WORK/ctx" "$WORK/store"

# --- builder ---------------------------------------------------------------

log "building builder (cargo build --release --locked)"
(cd "$REPO" && cargo build --release --locked --message-format=json-render-diagnostics) \
    >"$WORK/logs/cargo.json" || die "cargo build --release failed"
BUILDER=$(grep -o '"executable":"[^"]*/builder"' "$WORK/logs/cargo.json" | tail -n1 | cut -d'"' -f4)
[[ -n $BUILDER && -x $BUILDER ]] || die "cargo did not report the builder executable (see cargo build --release output)"
log "builder: $BUILDER"

# --- buildah: runtime and storage driver that work here ----------------------

# Runs `buildah <storage flags> "$@"` for the store "root runroot driver" in $1.
buildah_in() {
    local root runroot driver
    read -r root runroot driver <<<"$1"
    shift
    buildah --root "$root" --runroot "$runroot" --storage-driver "$driver" "$@"
}

# Makes a new, registered buildah storage for driver $2 under $WORK/store/$1
# and prints its "root runroot driver" line.
new_buildah_store() {
    local dir=$WORK/store/$1
    mkdir -p "$dir/root" "$dir/runroot"
    printf '%s %s %s\n' "$dir/root" "$dir/runroot" "$2"
}

mkdir -p "$WORK/ctx/probe"
cp /bin/busybox "$WORK/ctx/probe/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "true"]\n' >"$WORK/ctx/probe/Dockerfile"

BUILDAH_DRIVER=
REASONS=()
for runtime in default runc; do
    if [[ $runtime == runc ]]; then
        [[ $(buildah info --format '{{.host.OCIRuntime}}' 2>/dev/null) == runc ]] && break
        printf '[engine]\nruntime = "runc"\n' >"$WORK/containers.conf"
        export CONTAINERS_CONF=$WORK/containers.conf
    fi
    for driver in overlay vfs; do
        store=$(new_buildah_store "probe-$runtime-$driver" "$driver")
        BUILDAH_STORES+=("$store")
        if buildah_in "$store" bud --layers -t probe -f "$WORK/ctx/probe/Dockerfile" "$WORK/ctx/probe" \
            >"$WORK/logs/probe-$runtime-$driver.log" 2>&1; then
            BUILDAH_DRIVER=$driver
            break 2
        fi
        REASONS+=("runtime $runtime, driver $driver: $(grep -v '^\s*$' "$WORK/logs/probe-$runtime-$driver.log" | tail -n3)")
    done
done
if [[ -z $BUILDAH_DRIVER ]]; then
    printf 'build_vs_buildah: buildah cannot build a FROM scratch image with a RUN here:\n' >&2
    printf '  %s\n' "${REASONS[@]}" >&2
    exit 1
fi
BUILDAH_RUNTIME=$(buildah info --format '{{.host.OCIRuntime}}' 2>/dev/null || echo '?')
log "buildah: $(buildah --version | awk '{print $3}'), runtime $BUILDAH_RUNTIME${CONTAINERS_CONF:+ (via $CONTAINERS_CONF)}, storage driver $BUILDAH_DRIVER"

# --- fixtures ----------------------------------------------------------------

# True when every FROM of Dockerfile $1 is scratch or an earlier stage.
needs_no_registry() {
    awk '
        toupper($1) == "FROM" {
            base = ""
            for (i = 2; i <= NF; i++) if ($i !~ /^--/) { base = tolower($i); break }
            if (base != "scratch" && !(base in stages)) bad = 1
            for (i = 2; i < NF; i++) if (toupper($i) == "AS") stages[tolower($(i + 1))] = 1
        }
        END { exit bad }
    ' "$1"
}

# Writes $2 small files of varied text into directory $1, 100 per subdirectory.
generate_files() {
    local dir=$1 count=$2 i sub line
    line=$(printf 'the quick brown fox jumps over the lazy dog %.0s' {1..12})
    for ((i = 0; i < count; i++)); do
        sub=$dir/d$(printf '%03d' $((i / 100)))
        ((i % 100)) || mkdir -p "$sub"
        printf 'file %d\n%s\n%s\n' "$i" "${line:0:$((200 + (i * 37) % 1800))}" "$i" >"$sub/f$(printf '%05d' "$i")"
    done
}

if [[ -n ${BENCH_FIXTURES:-} ]]; then
    read -r -a FIXTURES <<<"$BENCH_FIXTURES"
else
    FIXTURES=()
    for dockerfile in "$REPO"/fixtures/*/Dockerfile; do
        name=$(basename "$(dirname "$dockerfile")")
        if needs_no_registry "$dockerfile"; then
            FIXTURES+=("$name")
        else
            log "skipping fixtures/$name: it starts from a registry image"
        fi
    done
fi
((${#FIXTURES[@]})) || die "no fixture to build under $REPO/fixtures"

for name in "${FIXTURES[@]}"; do
    [[ -f $REPO/fixtures/$name/Dockerfile ]] || die "fixtures/$name/Dockerfile does not exist"
    cp -a "$REPO/fixtures/$name" "$WORK/ctx/$name"
    cp /bin/busybox "$WORK/ctx/$name/busybox"
    if [[ $name == bench-many-files ]]; then
        log "generating $NFILES files for bench-many-files"
        generate_files "$WORK/ctx/$name/files" "$NFILES"
    fi
done

# --- measuring -----------------------------------------------------------------

HAVE_HYPERFINE=$(command -v hyperfine || true)

# measure LABEL PREPARE COMMAND RUNS WARMUP: times COMMAND (a shell command
# line) RUNS times after WARMUP untimed runs, running PREPARE (or nothing when
# empty) before each; prints "median min max" in seconds.
measure() {
    local label=$1 prepare=$2 command=$3 runs=$4 warmup=$5
    if [[ -n $HAVE_HYPERFINE ]]; then
        local csv=$WORK/logs/$label.csv
        local args=(--style basic --runs "$runs" --warmup "$warmup" --export-csv "$csv" --command-name "$label")
        [[ -n $prepare ]] && args+=(--prepare "$prepare")
        hyperfine "${args[@]}" "$command" >&2 || die "$label: hyperfine failed"
        awk -F, 'NR == 2 { print $4, $7, $8 }' "$csv"
    else
        local times=$WORK/logs/$label.times i t0 t1
        : >"$times"
        for ((i = 0; i < warmup + runs; i++)); do
            [[ -n $prepare ]] && bash -c "$prepare"
            t0=$(date +%s.%N)
            bash -c "$command" >/dev/null 2>&1 || die "$label: run $((i + 1)) failed: $command"
            t1=$(date +%s.%N)
            ((i < warmup)) || awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f\n", b - a }' >>"$times"
        done
        sort -g "$times" | awk '{ t[NR] = $1 } END {
            m = (NR % 2) ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
            printf "%.6f %.6f %.6f\n", m, t[1], t[NR] }'
    fi
}

# check LABEL COMMAND: one build whose output is kept; on failure shows it.
check() {
    local label=$1 command=$2
    log "$label"
    if ! bash -c "$command" >"$WORK/logs/$label.log" 2>&1; then
        tail -n 30 "$WORK/logs/$label.log" >&2
        die "$label failed: $command"
    fi
}

declare -A RESULT
q() { printf '%q' "$1"; }

for name in "${FIXTURES[@]}"; do
    ctx=$WORK/ctx/$name

    store=$WORK/store/builder-$name
    mkdir -p "$store"
    cmd="$(q "$BUILDER") --root $(q "$store") build --progress plain -t bench -f $(q "$ctx/Dockerfile") $(q "$ctx")"
    check "builder-$name-first" "$cmd"
    RESULT[$name/builder/cached]=$(measure "builder-$name-cached" "" "$cmd" "$RUNS" 1)
    RESULT[$name/builder/cold]=$(measure "builder-$name-cold" "bash $(q "$SELF") --reset $(q "$store")" "$cmd" "$COLD_RUNS" 0)

    bstore=$(new_buildah_store "buildah-$name" "$BUILDAH_DRIVER")
    BUILDAH_STORES+=("$bstore")
    read -r broot brunroot _ <<<"$bstore"
    cmd="buildah --root $(q "$broot") --runroot $(q "$brunroot") --storage-driver $BUILDAH_DRIVER bud --layers -t bench -f $(q "$ctx/Dockerfile") $(q "$ctx")"
    check "buildah-$name-first" "$cmd"
    RESULT[$name/buildah/cached]=$(measure "buildah-$name-cached" "" "$cmd" "$RUNS" 1)
    RESULT[$name/buildah/cold]=$(measure "buildah-$name-cold" "bash $(q "$SELF") --reset $(q "$broot") $(q "$brunroot")" "$cmd" "$COLD_RUNS" 0)
done

# --- report ----------------------------------------------------------------------

printf '\nbuilder vs buildah %s (bud --layers, runtime %s, %s driver) on %s, %s cores, kernel %s\n' \
    "$(buildah --version | awk '{print $3}')" "$BUILDAH_RUNTIME" "$BUILDAH_DRIVER" \
    "$(grep -oP '^PRETTY_NAME="?\K[^"]*' /etc/os-release)" "$(nproc)" "$(uname -r)"
printf 'runs: cold %s, cached %s per tool; times in seconds (median / min / max)\n\n' "$COLD_RUNS" "$RUNS"
printf '%-18s %-7s %-26s %-26s %s\n' fixture case builder buildah 'buildah/builder'
MISSES=0
for name in "${FIXTURES[@]}"; do
    for kind in cold cached; do
        read -r bm bmin bmax <<<"${RESULT[$name/builder/$kind]}"
        read -r hm hmin hmax <<<"${RESULT[$name/buildah/$kind]}"
        printf '%-18s %-7s %-26s %-26s %s\n' "$name" "$kind" \
            "$(printf '%.3f / %.3f / %.3f' "$bm" "$bmin" "$bmax")" \
            "$(printf '%.3f / %.3f / %.3f' "$hm" "$hmin" "$hmax")" \
            "$(awk -v h="$hm" -v b="$bm" 'BEGIN { printf "%.1fx", h / b }')"
    done
done

printf '\ntargets (medians):\n'
verdict() { # verdict DESCRIPTION AWK-CONDITION
    if awk "BEGIN { exit !($2) }"; then
        printf '  PASS  %s\n' "$1"
    else
        printf '  MISS  %s\n' "$1"
        MISSES=$((MISSES + 1))
    fi
}
for name in "${FIXTURES[@]}"; do
    read -r bcold _ <<<"${RESULT[$name/builder/cold]}"
    read -r hcold _ <<<"${RESULT[$name/buildah/cold]}"
    read -r bcached _ <<<"${RESULT[$name/builder/cached]}"
    read -r hcached _ <<<"${RESULT[$name/buildah/cached]}"
    verdict "$name: cached rebuild under 0.1 s ($(printf '%.3f' "$bcached") s)" "$bcached < 0.1"
    verdict "$name: cached rebuild at least 5x faster than buildah's ($(awk -v h="$hcached" -v b="$bcached" 'BEGIN { printf "%.1fx", h / b }'))" "$hcached >= 5 * $bcached"
    verdict "$name: cold build no slower than buildah's ($(printf '%.3f vs %.3f' "$bcold" "$hcold") s)" "$bcold <= $hcold"
done
printf '\n%d target(s) missed\n' "$MISSES"
