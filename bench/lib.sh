# Helpers the bench/ scripts share. Source it after setting REPO (the
# checkout): `. "$REPO/bench/lib.sh"`.

BENCH_NAME=$(basename "$0" .sh)

log() { printf '==> %s\n' "$*" >&2; }

die() {
    printf '%s: error: %s\n' "$BENCH_NAME" "$*" >&2
    exit 1
}

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# Sets BUILDER to the release binary, built here, unless BUILDER names one.
ensure_builder() {
    if [[ -z ${BUILDER:-} ]]; then
        log "building builder (cargo build --release --locked)"
        (cd "$REPO" && cargo build --release --locked >&2) || die "cargo build --release failed"
        BUILDER=${CARGO_TARGET_DIR:-$REPO/target}/release/builder
    fi
    [[ -x $BUILDER ]] || die "no builder executable at $BUILDER"
}
