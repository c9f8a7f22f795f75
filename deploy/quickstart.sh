#!/usr/bin/env bash
# cairn's main job on this machine, in one command:
#
#   bash deploy/quickstart.sh
#
# builds cairn, starts a local Kubernetes control plane (Tests/control-plane.sh: etcd,
# kube-apiserver, kube-controller-manager; built once into ~/.cache/cairn, about 9 minutes the
# first time), makes a git repository from this project's clusters/, runs `cairn run` on it until
# the first pass is done, shows the objects cairn created and the status commit it wrote back,
# then stops everything it started.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
cd "$here"

echo "==> building cairn (swift build; the first build takes several minutes)"
swift build --product cairn >/dev/null
cairn="$(swift build --show-bin-path)/cairn"

echo "==> starting the local control plane (built once, then cached in ~/.cache/cairn)"
bash Tests/control-plane.sh build >&2
plane="$(bash Tests/control-plane.sh up)"
work="$(mktemp -d /tmp/cairn-quickstart.XXXXXX)"
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    bash Tests/control-plane.sh down "$plane" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
export KUBECONFIG="$plane/kubeconfig"

echo "==> a git repository made from clusters/ at $work/origin.git"
git init -q --bare -b main "$work/origin.git"
git clone -q "$work/origin.git" "$work/checkout" 2>/dev/null
mkdir -p "$work/checkout/clusters"
cp clusters/*.yaml "$work/checkout/clusters/"
git -C "$work/checkout" -c user.name=you -c user.email=you@example.com add -A
git -C "$work/checkout" -c user.name=you -c user.email=you@example.com commit -q -m "four clusters"
git -C "$work/checkout" push -q origin HEAD:main
for ns in esdb aerospike; do kubectl create namespace "$ns" >/dev/null; done

echo "==> cairn run --repo $work/origin.git --branch main --path clusters --interval 1s"
"$cairn" run --repo "$work/origin.git" --branch main --path clusters --interval 1s \
    --metrics-address 127.0.0.1:19090 --cache-dir "$work/cache" 2>"$work/cairn.log" &
daemon=$!
for _ in $(seq 1 120); do
    curl -sf http://127.0.0.1:19090/readyz >/dev/null 2>&1 && break
    sleep 0.5
done
curl -sf http://127.0.0.1:19090/readyz >/dev/null || { echo "cairn did not finish its first pass:"; cat "$work/cairn.log"; exit 1; }
sleep 2   # the status commit follows the pass

echo
echo "==> what cairn created (kubectl get -A -l app.kubernetes.io/managed-by=cairn)"
kubectl get statefulsets,services,configmaps,poddisruptionbudgets,secrets -A -l app.kubernetes.io/managed-by=cairn
echo
echo "==> the status commit cairn wrote back (git log cairn-status)"
git --git-dir "$work/origin.git" log --stat --format='%h %an <%ae> %s' cairn-status
echo
echo "==> status/esdb/esdb-cluster.yaml on the cairn-status branch"
git --git-dir "$work/origin.git" show cairn-status:status/esdb/esdb-cluster.yaml
echo
echo "==> cairn's log"
cat "$work/cairn.log"
