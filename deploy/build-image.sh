#!/bin/sh
# Builds the builder image (deploy/Dockerfile) with builder itself, offline:
# stages a root filesystem from this machine's files, then runs
# `builder build` on it. Run from anywhere, as root (or rootless with user
# namespaces); needs busybox-static and, for RUN steps' default network in
# the image, slirp4netns (Debian packages).
#
#   deploy/build-image.sh [BUILD-FLAGS...]
#
# BUILD-FLAGS go to `builder build` (default: -t builder:VERSION); e.g.
#   deploy/build-image.sh -t registry.example/ci/builder:1 --push
# Environment:
#   BUILDER_BIN  the binary put in the image (default target/release/builder,
#                built with `cargo build --release --locked` when absent)
#   BUILDER      the builder that runs the build (default: BUILDER_BIN)
#   BUSYBOX      a static busybox (default /bin/busybox)
#
# The binary is glibc-linked (no musl target is installed here), so the
# image carries the shared libraries `ldd` names for it, at the same paths.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILDER_BIN:-$repo/target/release/builder}
if [ ! -x "$bin" ]; then
    [ -z "${BUILDER_BIN:-}" ] || { echo "build-image.sh: $bin is not an executable" >&2; exit 1; }
    (cd "$repo" && cargo build --release --locked)
fi
runner=${BUILDER:-$bin}
busybox=${BUSYBOX:-/bin/busybox}

stage=$(mktemp -d "${TMPDIR:-/tmp}/builder-image.XXXXXX")
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
# /run: slirp4netns's sandbox mounts over it. /workspace: the context, by
# default. home/builder: the user's home (copied with its owner).
mkdir -p "$root/usr/local/bin" "$root/usr/bin" "$root/bin" "$root/etc/ssl/certs" "$root/tmp" \
    "$root/run" "$root/root" "$root/home" "$root/workspace" \
    "$stage/home/builder/.docker" "$stage/home/builder/.local/share/builder"
chmod 1777 "$root/tmp" "$root/workspace"
chmod 0700 "$root/root"

# Copies the shared libraries an ELF file loads (and its loader) to the
# paths it loads them from.
copy_libraries() {
    ldd "$1" | awk '/=> \// { print $3 } /^\t\// { print $1 }' | while read -r lib; do
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}

# builder, without its debug information (a third of the size or less).
if command -v strip >/dev/null 2>&1; then
    strip -o "$root/usr/local/bin/builder" "$bin"
else
    cp "$bin" "$root/usr/local/bin/builder"
fi
copy_libraries "$bin"

# RUN steps' default network (needs /dev/net/tun in the container too).
if slirp=$(command -v slirp4netns); then
    cp "$slirp" "$root/usr/bin/slirp4netns"
    copy_libraries "$slirp"
else
    echo "build-image.sh: no slirp4netns here: the image's RUN steps need --network host or none" >&2
fi

# A shell and the usual tools for CI scripts: busybox and its applets.
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
    echo "build-image.sh: $busybox is not a static busybox (apt-get install busybox-static)" >&2
    exit 1
fi
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done

# CA certificates for registries (builder falls back to its bundled roots).
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
else
    echo "build-image.sh: no /etc/ssl/certs/ca-certificates.crt: the image trusts builder's bundled roots" >&2
fi

printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'builder:x:1000:1000:builder:/home/builder:/bin/sh' \
    'nobody:x:65534:65534:nobody:/nonexistent:/bin/false' > "$root/etc/passwd"
printf '%s\n' 'root:x:0:' 'builder:x:1000:' 'nogroup:x:65534:' > "$root/etc/group"
printf 'hosts: files dns\n' > "$root/etc/nsswitch.conf"

version=$("$bin" --version | awk '{ print $2 }')
if [ $# -eq 0 ]; then
    set -- -t "builder:$version"
fi
"$runner" build -f "$repo/deploy/Dockerfile" "$@" "$stage"
