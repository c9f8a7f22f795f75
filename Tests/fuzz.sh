#!/usr/bin/env bash
# libFuzzer over what cairn reads from others (spec files, JSON, kubeconfigs, DNS messages: SplitDNS's
# resolver) and its config writers (eventstore.conf, atomix.conf, aerospike.conf).
#   Tests/fuzz.sh [SECONDS]     build Sources/cairn-fuzz with -sanitize=fuzzer,address and run
#                               each target for SECONDS (default 60; CI runs 60)
# A crash, a leak or an input slower than 10 s fails the run; the input is left in
# .build-fuzz/crashes/ and must become a regression test. Bounded: every run stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
# A fixed seed unless told otherwise (CAIRN_FUZZ_SEED=0 for a random one): CI's runs repeat.
seed=${CAIRN_FUZZ_SEED:-1}
export PATH="/opt/swift/usr/bin:$PATH"
swift build --scratch-path .build-fuzz --product cairn-fuzz \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFUZZING -Xswiftc -Xclang-linker -Xswiftc -fuse-ld=lld 2>&1 | grep -vE "warning: Cannot export local symbol" | tail -3
bin=$(swift build --scratch-path .build-fuzz --show-bin-path)/cairn-fuzz
[ -x "$bin" ] || { echo "fuzz: the build made no $bin"; exit 1; }
work=.build-fuzz/corpus
mkdir -p "$work/spec" "$work/json" "$work/conf" "$work/kubeconfig" "$work/hocon" "$work/aerospike" "$work/dns" .build-fuzz/crashes
cp clusters/*.yaml "$work/spec/"
cp Tests/CairnTests/Golden/plan/*.json "$work/json/"
printf '{"a": 1, "b": [true, null, -2.5e3], "c": "\\u00e9\\ud83d\\ude00"}' > "$work/json/seed.json"
# A LIST page whose fieldsV1 a pass skips (cairn's) and keeps (kubectl's).
printf '{"kind": "ConfigMapList", "items": [{"metadata": {"name": "a", "managedFields": [{"manager": "cairn", "fieldsV1": {"f:data": {"f:x": {}}, "s": "]}"}}, {"fieldsV1": {"f:a": [1, {"b": null}]}, "manager": "kubectl"}]}, "data": {"x": "1"}}]}' > "$work/json/list.json"
printf '{"items": [{"metadata": {"name": "a"}, "spec": {"a": 1, "b": [{"c": 2, "d": 3}, 4, 5], "e": 6}, "data": {"x": "1"}, "status": {"s": 1}, "other": [1]}, {"spec": {"a": 1}, "metadata": {}, "spec": {"b": 2}}]}' > "$work/json/shaped.json"
printf '{"Db": "/data", "ExtIp": "0.0.0.0", "GossipSeed": ["a:1", "b:2"], "Multi": "x\\ny\\n", "Word": "yes"}' > "$work/conf/seed.json"
printf '{"cluster": {"node": {"id": "${x}", "address": "a:5679"}, "discovery": {"type": "dns", "service": "s.ns"}}, "groups": [1, 2.5, true, "a\\"b"], "k.e y": {"#": "}{"}}' > "$work/hocon/seed.json"
printf '{"service": {"proto-fd-max": 15000, "feature-key-file": "/etc/k"}, "network": {"service": {"port": 3000, "address": "any"}}, "namespaces": [{"name": "test", "replication-factor": 2, "storage-engine": {"type": "memory"}}], "security": {"ldap": {"user-dn-pattern": "uid=${un},ou=People"}}}' > "$work/aerospike/seed.json"
# A query for a node's FQDN, and an answer with a compressed name and a CNAME.
printf '\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05kdb-1\x03kdb\x07example\x03com\x00\x00\x01\x00\x01' > "$work/dns/query"
printf '\x12\x34\x81\x80\x00\x01\x00\x02\x00\x00\x00\x00\x01a\x04test\x00\x00\x01\x00\x01\xc0\x0c\x00\x05\x00\x01\x00\x00\x00\x3c\x00\x04\x01b\xc0\x0e\x01b\xc0\x0e\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x07' > "$work/dns/reply"
cat > "$work/kubeconfig/seed.yaml" <<'KUBECONFIG'
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}, {name: e, user: {exec: {command: /bin/true, apiVersion: client.authentication.k8s.io/v1}}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: db}}, {name: y, context: {cluster: c, user: e}}]
current-context: x
KUBECONFIG
status=0
for target in ${CAIRN_FUZZ_TARGETS:-spec json conf kubeconfig hocon aerospike dns}; do
    echo "fuzz: $target for ${seconds}s"
    if ! CAIRN_FUZZ_TARGET=$target "$bin" "$work/$target" -max_total_time="$seconds" -seed="$seed" -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -artifact_prefix=.build-fuzz/crashes/$target- -print_final_stats=1 >".build-fuzz/$target.log" 2>&1; then
        echo "fuzz: $target FAILED; see .build-fuzz/$target.log and .build-fuzz/crashes/"
        tail -30 ".build-fuzz/$target.log"
        status=1
    else
        grep -E "stat::number_of_executed_units|cov:" ".build-fuzz/$target.log" | tail -2
    fi
done
exit $status
