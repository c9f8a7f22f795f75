#!/usr/bin/env bash
# cairn's container image, built here from deploy/Containerfile with buildah, with no registry.
#
#   Tests/image.sh build    build the image (reusing what is cached); print its size and layers,
#                           and its reference (localhost/cairn:dev) as the last line
#   Tests/image.sh ref      print the reference if the image exists (exit 1 if not)
#
# No registry can be reached here, so the base image the Containerfile names
# (docker.io/library/debian:bookworm-slim) is made locally: a minbase Debian root file system
# from debootstrap, cached in $CAIRN_CACHE_DIR (default ~/.cache/cairn) as a tarball. The
# Containerfile's build stage needs the Swift toolchain's image, which cannot be pulled either:
# the binary is built on the host with --static-swift-stdlib and handed in with
# --build-arg CAIRN_BINARY=host (the multi-stage build stays the default for users with a
# registry). The image's own steps (apt-get install libgit2-1.5 ca-certificates, the user) run
# as written, in buildah's chroot isolation, through Debian's mirror.
#
# buildah runs as root with the vfs storage driver and chroot isolation (what works on these
# machines; `podman run` does not): the tests' `buildah from` and `buildah run` pass the same
# --storage-driver vfs (buildah 1.28 reads no environment variable for it).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_DIR="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}"
ROOTFS="$CACHE_DIR/debian-bookworm-minbase.tar"
BASE=docker.io/library/debian:bookworm-slim
IMAGE="${CAIRN_IMAGE:-localhost/cairn:dev}"
MIRROR="${CAIRN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BUILDAH=(buildah --storage-driver vfs)

log() { echo "image: $*" >&2; }
die() { log "$*"; exit 1; }

install_packages() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "need root to install ${missing[*]}"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

base_image() {
    if "${BUILDAH[@]}" inspect --type image "$BASE" >/dev/null 2>&1; then return; fi
    if [ ! -s "$ROOTFS" ]; then
        local dir
        dir=$(mktemp -d)
        log "debootstrap --variant=minbase bookworm (once; cached in $ROOTFS)"
        local start=$SECONDS
        debootstrap --variant=minbase bookworm "$dir/root" "$MIRROR" >"$dir/debootstrap.log" 2>&1 ||
            { tail -20 "$dir/debootstrap.log" >&2; rm -rf "$dir"; die "debootstrap failed"; }
        # What a slim image leaves out: package lists and caches, documentation.
        rm -rf "$dir/root"/var/lib/apt/lists/* "$dir/root"/var/cache/apt/* "$dir/root"/usr/share/doc/* \
            "$dir/root"/usr/share/man/* "$dir/root"/usr/share/locale/* "$dir/root"/var/log/*
        echo "deb $MIRROR bookworm main" >"$dir/root/etc/apt/sources.list"
        mkdir -p "$CACHE_DIR"
        tar -C "$dir/root" --numeric-owner -cf "$ROOTFS.tmp" .
        mv "$ROOTFS.tmp" "$ROOTFS"
        rm -rf "$dir"
        log "root file system made in $((SECONDS - start)) s"
    fi
    log "importing it as $BASE"
    local ctr
    ctr=$("${BUILDAH[@]}" from scratch)
    "${BUILDAH[@]}" add "$ctr" "$ROOTFS" / >/dev/null
    "${BUILDAH[@]}" config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
    "${BUILDAH[@]}" commit --rm "$ctr" "$BASE" >/dev/null
}

binary() {
    export PATH="/opt/swift/usr/bin:$PATH"
    log "swift build -c release --product cairn --static-swift-stdlib"
    local start=$SECONDS
    swift build -c release --product cairn --static-swift-stdlib >&2
    install -D -s .build/release/cairn .build/image/cairn
    log "binary built in $((SECONDS - start)) s: $(du -h .build/image/cairn | cut -f1) stripped"
}

case "${1:-}" in
build)
    install_packages buildah debootstrap binutils
    start=$SECONDS
    base_image
    binary
    log "buildah bud -f deploy/Containerfile --build-arg CAIRN_BINARY=host -t $IMAGE"
    before=$("${BUILDAH[@]}" containers --quiet --all | sort)
    "${BUILDAH[@]}" bud --isolation chroot --pull=never --layers=false --build-arg CAIRN_BINARY=host -f deploy/Containerfile -t "$IMAGE" . >&2
    # What the build left (the binary stage's working container and image: vfs copies, 80 MB each).
    comm -13 <(echo "$before") <("${BUILDAH[@]}" containers --quiet --all | sort) | xargs -r "${BUILDAH[@]}" rm >/dev/null
    "${BUILDAH[@]}" rmi --prune >/dev/null 2>&1 || true
    log "image built in $((SECONDS - start)) s"
    "${BUILDAH[@]}" images --format '{{.Name}}:{{.Tag}} {{.Size}}' "$IMAGE" >&2
    "${BUILDAH[@]}" inspect --type image --format '{{range .OCIv1.RootFS.DiffIDs}}layer {{.}}{{"\n"}}{{end}}' "$IMAGE" >&2
    echo "$IMAGE"
    ;;
ref)
    "${BUILDAH[@]}" inspect --type image "$IMAGE" >/dev/null 2>&1 || exit 1
    echo "$IMAGE"
    ;;
*)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
