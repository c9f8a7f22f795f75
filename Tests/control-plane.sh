#!/usr/bin/env bash
# A real Kubernetes control plane on loopback for cairn's tests: etcd, kube-apiserver and
# kube-controller-manager, with TLS and token auth, like envtest does for Go operators.
#
#   Tests/control-plane.sh build        build (once) or find the binaries; print their directory
#   Tests/control-plane.sh up [DIR]     start everything in DIR (default: a new temp dir); print DIR
#   Tests/control-plane.sh env DIR      print `export` lines: KUBECONFIG, KUBEBUILDER_ASSETS, CAIRN_*
#   Tests/control-plane.sh down DIR     stop every process started in DIR, by its pid
#   Tests/control-plane.sh restart-apiserver DIR
#                                       stop DIR's kube-apiserver and start it again on its port
#
# Binaries: taken from $KUBEBUILDER_ASSETS when it is set (etcd, kube-apiserver and, if present,
# kube-controller-manager); otherwise built once from Debian's source package `kubernetes`
# (1.20.2) into $CAIRN_CACHE_DIR (default ~/.cache/cairn) and reused. See
# ../shared/research/local-control-plane.md for why each step is needed.
set -euo pipefail

KUBE_VERSION=1.20.2
CACHE_DIR="${CAIRN_CACHE_DIR:-$HOME/.cache/cairn}"
BIN_DIR="$CACHE_DIR/kubernetes-$KUBE_VERSION/bin"

log() { echo "control-plane: $*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
        die "need root to run: $* (or set KUBEBUILDER_ASSETS to a directory with etcd and kube-apiserver)"
    fi
}

install_packages() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    log "installing ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

build() {
    if [ -n "${KUBEBUILDER_ASSETS:-}" ]; then
        [ -x "$KUBEBUILDER_ASSETS/kube-apiserver" ] && [ -x "$KUBEBUILDER_ASSETS/etcd" ] ||
            die "KUBEBUILDER_ASSETS=$KUBEBUILDER_ASSETS has no etcd and kube-apiserver"
        echo "$KUBEBUILDER_ASSETS"
        return
    fi
    if [ -x "$BIN_DIR/kube-apiserver" ] && [ -x "$BIN_DIR/kube-controller-manager" ] && [ -x "$BIN_DIR/etcd" ]; then
        echo "$BIN_DIR"
        return
    fi
    if [ ! -f /etc/apt/sources.list.d/cairn-deb-src.sources ]; then
        log "enabling Debian source packages"
        as_root tee /etc/apt/sources.list.d/cairn-deb-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
        as_root apt-get update -qq
    fi
    install_packages golang-go etcd-server rsync jq golang-github-modern-go-reflect2-dev dpkg-dev openssl
    local work="$CACHE_DIR/kubernetes-$KUBE_VERSION/src"
    rm -rf "$work"
    mkdir -p "$work"
    log "fetching Debian's kubernetes source package"
    (cd "$work" && apt-get source --download-only kubernetes >/dev/null 2>&1) || die "apt-get source kubernetes failed"
    local orig
    orig=$(ls "$work"/kubernetes_*.orig.tar.* | head -n 1)
    mkdir -p "$work/tree"
    tar -xf "$orig" -C "$work/tree" --strip-components=1
    # reflect2 1.0.1 crashes binaries built with Go >= 1.18 (SIGSEGV in mapiterinit).
    local reflect2=/usr/share/gocode/src/github.com/modern-go/reflect2
    rm -rf "$work/tree/vendor/github.com/modern-go/reflect2"
    mkdir -p "$work/tree/vendor/github.com/modern-go/reflect2"
    cp "$reflect2"/*.go "$work/tree/vendor/github.com/modern-go/reflect2/"
    log "building kube-apiserver and kube-controller-manager (about 9 minutes on 2 cores, once)"
    (
        cd "$work/tree"
        mkdir -p .go/src/k8s.io
        ln -sfn ../../.. .go/src/k8s.io/kubernetes
        mkdir -p "$work/home"
        env GOPATH="$PWD/.go" GO111MODULE=off CGO_ENABLED=0 HOME="$work/home" GOFLAGS= \
            make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$work/build.log" 2>&1
    ) || { tail -n 30 "$work/build.log" >&2; die "build failed; full log in $work/build.log"; }
    mkdir -p "$BIN_DIR"
    cp "$work/tree/_output/local/bin/linux/amd64/kube-apiserver" "$work/tree/_output/local/bin/linux/amd64/kube-controller-manager" "$BIN_DIR/"
    ln -sfn /usr/bin/etcd "$BIN_DIR/etcd"
    rm -rf "$work"
    log "binaries cached in $BIN_DIR"
    echo "$BIN_DIR"
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts kube-apiserver in DIR (ports and token from `up`) and waits until it is ready.
start_apiserver() {
    local bin=$1 dir=$2
    local etcd_port api_port
    etcd_port=$(cat "$dir/etcd.port"); api_port=$(cat "$dir/apiserver.port")
    "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" --bind-address 127.0.0.1 \
        --advertise-address 127.0.0.1 --secure-port "$api_port" --cert-dir "$dir/certs" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$dir/sa.pub" --service-account-signing-key-file "$dir/sa.key" \
        --token-auth-file "$dir/tokens.csv" --authorization-mode RBAC \
        --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true >>"$dir/apiserver.log" 2>&1 &
    echo $! >"$dir/apiserver.pid"

    local server="https://127.0.0.1:$api_port"
    local ready=""
    for _ in $(seq 1 120); do
        if [ -f "$dir/certs/apiserver.crt" ] &&
            curl -sf --cacert "$dir/certs/apiserver.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")" "$server/readyz" >/dev/null 2>&1; then
            ready=yes
            break
        fi
        kill -0 "$(cat "$dir/apiserver.pid")" 2>/dev/null || break
        sleep 0.5
    done
    if [ -z "$ready" ]; then
        tail -n 20 "$dir/apiserver.log" >&2
        down "$dir"
        die "kube-apiserver did not become ready in 60 s"
    fi
}

# Stops DIR's kube-apiserver (by its pid) and starts it again on the same port: its watch
# cache starts afresh, so a watch resumed from before gets 410 Gone.
restart_apiserver() {
    local dir=${1:?usage: control-plane.sh restart-apiserver DIR}
    local pid
    pid=$(cat "$dir/apiserver.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    start_apiserver "$(build)" "$dir"
}

up() {
    local bin dir
    bin=$(build)
    command -v openssl >/dev/null || install_packages openssl
    dir="${1:-$(mktemp -d /tmp/cairn-control-plane.XXXXXX)}"
    mkdir -p "$dir/certs" "$dir/etcd"
    local etcd_port peer_port api_port
    etcd_port=$(free_port); peer_port=$(free_port); api_port=$(free_port)

    openssl genrsa -out "$dir/sa.key" 2048 2>/dev/null
    openssl rsa -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
    local admin_token restricted_token
    admin_token=$(openssl rand -hex 24)
    restricted_token=$(openssl rand -hex 24)
    {
        echo "$admin_token,cairn-admin,1000,\"system:masters\""
        echo "$restricted_token,cairn-restricted,1001,\"cairn-testers\""
    } >"$dir/tokens.csv"

    "$bin/etcd" --data-dir "$dir/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
        --advertise-client-urls "http://127.0.0.1:$etcd_port" --listen-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
        --initial-cluster "default=http://127.0.0.1:$peer_port" >"$dir/etcd.log" 2>&1 &
    echo $! >"$dir/etcd.pid"

    echo "$etcd_port" >"$dir/etcd.port"
    echo "$api_port" >"$dir/apiserver.port"
    echo "$admin_token" >"$dir/admin.token"
    start_apiserver "$bin" "$dir"
    local server="https://127.0.0.1:$api_port"

    write_kubeconfig "$dir/kubeconfig" "$server" "$dir/certs/apiserver.crt" cairn-admin "$admin_token"
    write_kubeconfig "$dir/kubeconfig-restricted" "$server" "$dir/certs/apiserver.crt" cairn-restricted "$restricted_token"

    if [ -x "$bin/kube-controller-manager" ]; then
        "$bin/kube-controller-manager" --kubeconfig "$dir/kubeconfig" --leader-elect=false \
            --controllers statefulset,job,garbagecollector,serviceaccount,serviceaccount-token,endpoint \
            --service-account-private-key-file "$dir/sa.key" --root-ca-file "$dir/certs/apiserver.crt" \
            --bind-address 127.0.0.1 --secure-port 0 --port 0 >"$dir/controller-manager.log" 2>&1 &
        echo $! >"$dir/controller-manager.pid"
    fi
    {
        echo "export KUBECONFIG=$dir/kubeconfig"
        echo "export KUBEBUILDER_ASSETS=$bin"
        echo "export CAIRN_TEST_KUBECONFIG=$dir/kubeconfig"
        echo "export CAIRN_TEST_KUBECONFIG_RESTRICTED=$dir/kubeconfig-restricted"
        echo "export CAIRN_TEST_CONTROL_PLANE=$dir"
    } >"$dir/env"
    echo "$dir"
}

write_kubeconfig() {
    local file=$1 server=$2 ca=$3 user=$4 token=$5
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: $server
    certificate-authority: $ca
users:
- name: $user
  user:
    token: $token
contexts:
- name: $user@local
  context:
    cluster: local
    user: $user
current-context: $user@local
EOF
}

down() {
    local dir=${1:?usage: control-plane.sh down DIR}
    for name in controller-manager apiserver etcd; do
        local pidfile="$dir/$name.pid"
        [ -f "$pidfile" ] || continue
        local pid
        pid=$(cat "$pidfile")
        if kill -0 "$pid" 2>/dev/null; then
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
        fi
        rm -f "$pidfile"
    done
}

case "${1:-}" in
build) build ;;
up) up "${2:-}" ;;
env) cat "${2:?usage: control-plane.sh env DIR}/env" ;;
down) down "${2:-}" ;;
restart-apiserver) restart_apiserver "${2:-}" ;;
*) sed -n '2,16p' "$0" >&2; exit 2 ;;
esac
