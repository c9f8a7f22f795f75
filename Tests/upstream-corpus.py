#!/usr/bin/env python3
"""Measures how many upstream manifests of the four operators cairn accepts (issue #15).

Reads git clones of the operators' repositories (not part of the project, and not needed by
the tests: the shared samples are), takes every example manifest and every fenced YAML block
of their documentation at the releases below that holds a cluster, and runs `cairn validate`
on each. A block that lacks a field the upstream CRD requires, is not YAML, or is a `kubectl
get` dump is a fragment, not a manifest; the rest are complete. Prints one line per refused
manifest with its errors, then the figures.

    python3 Tests/upstream-corpus.py CAIRN MIRRORS [SHARED_SAMPLES]

MIRRORS holds owner+name/repo (or owner+name/repo/.git) clones, as the workplace's `fetch`
leaves them: aerospike+aerospike-kubernetes-operator, zalando+postgres-operator,
atomix+atomix-operator, kurrent-io+documentation.
"""
import hashlib, os, re, subprocess, sys, tempfile

RELEASES = {
    "aerospike+aerospike-kubernetes-operator": ["HEAD", "v4.2.0", "4.0.0", "3.0.0", "2.5.0"],
    "zalando+postgres-operator": ["HEAD", "v1.12.0", "v1.9.0", "v1.6.0"],
    "atomix+atomix-operator": ["HEAD"],
    "kurrent-io+documentation": ["HEAD"],
}
CLUSTER = re.compile(r"^kind:\s*(AerospikeCluster|postgresql|AtomixCluster|KurrentDB)\s*$", re.M)
# A fragment: not YAML, a `kubectl get` dump, or lacking a field the upstream CRD itself requires
# (the API server would refuse it too). A field only cairn requires is a refusal, not a fragment.
FRAGMENT = re.compile(r": must be a mapping \(got a string\)|invalid YAML|metadata\.uid: ")
# The `required` lists of the CRDs' spec (aerospike-kubernetes-operator's and postgres-operator's
# CRD YAML; KurrentDB's API reference, v1.5.0; the Atomix operator's CRD has no schema).
UPSTREAM_REQUIRED = {
    "AerospikeCluster": {"spec", "spec.aerospikeConfig", "spec.image", "spec.size"},
    "postgresql": {"spec", "spec.numberOfInstances", "spec.postgresql", "spec.teamId", "spec.volume",
                   "spec.postgresql.version", "spec.volume.size"},
    "KurrentDB": {"spec", "spec.replicas", "spec.image", "spec.storage", "spec.network", "spec.network.domain",
                  "spec.network.loadBalancer"},
    "AtomixCluster": {"spec"},
}
REQUIRED = re.compile(r"^(\S+): is required$")


def fragment(errors, kind):
    """Whether the manifest is a fragment (see FRAGMENT and UPSTREAM_REQUIRED)."""
    for e in errors:
        if FRAGMENT.search(e):
            return True
        m = REQUIRED.match(e.split(": ", 1)[1] if e.count(": ") >= 2 else e)
        if m and m.group(1) in UPSTREAM_REQUIRED.get(kind, set()):
            return True
    return False


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], capture_output=True).stdout


def manifests(mirrors, shared):
    seen = set(shared)
    for name, refs in RELEASES.items():
        repo = os.path.join(mirrors, name, "repo")
        if not os.path.isdir(repo):
            sys.exit(f"no clone of {name} under {mirrors}")
        for ref in refs:
            if not git(repo, "rev-parse", "--verify", "-q", ref):
                continue
            for path in git(repo, "ls-tree", "-r", "--name-only", ref).decode().splitlines():
                if "vendor/" in path or "charts/" in path or "helm" in path:
                    continue
                if name.startswith("kurrent-io") and "kubernetes-operator" not in path:
                    continue
                if path.endswith((".yaml", ".yml")):
                    blobs = [("", git(repo, "show", f"{ref}:{path}"))]
                elif path.endswith(".md"):
                    text = git(repo, "show", f"{ref}:{path}").decode("utf8", "replace")
                    blobs = [(f"#block{i + 1}", m.group(1).encode())
                             for i, m in enumerate(re.finditer(r"```ya?ml\n(.*?)```", text, re.S))]
                else:
                    continue
                for suffix, blob in blobs:
                    text = blob.decode("utf8", "replace")
                    digest = hashlib.sha1(blob).hexdigest()
                    if not CLUSTER.search(text) or "{{" in text or digest in seen:
                        continue
                    seen.add(digest)
                    yield f"{name.split('+')[1]}@{ref}:{path}{suffix}", blob


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    cairn, mirrors = sys.argv[1], sys.argv[2]
    shared = set()
    if len(sys.argv) > 3:
        for root, _, files in os.walk(sys.argv[3]):
            for f in files:
                if f.endswith(".yaml"):
                    shared.add(hashlib.sha1(open(os.path.join(root, f), "rb").read()).hexdigest())
    counts = {"accepted": 0, "refused": 0, "fragment": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for label, blob in manifests(mirrors, shared):
            path = os.path.join(tmp, "manifest.yaml")
            open(path, "wb").write(blob)
            r = subprocess.run([cairn, "validate", path], capture_output=True, text=True)
            errors = [line.split(": ", 1)[1] for line in r.stderr.splitlines() if not line.startswith(("note:", "warning:")) and ": " in line]
            if r.returncode == 0:
                counts["accepted"] += 1
            elif fragment(errors, (CLUSTER.search(blob.decode("utf8", "replace")) or [None, ""])[1]):
                counts["fragment"] += 1
            else:
                counts["refused"] += 1
                print(f"refused {label}")
                for e in errors:
                    print(f"    {e}")
    complete = counts["accepted"] + counts["refused"]
    print(f"{complete + counts['fragment']} manifests: {counts['fragment']} fragments; "
          f"{counts['accepted']} of {complete} complete ones accepted ({100 * counts['accepted'] / max(complete, 1):.1f}%)")


if __name__ == "__main__":
    main()
