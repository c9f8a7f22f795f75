import ClusterSpecs

/// Strong consistency: a namespace with `strong-consistency: true` serves no data until its
/// roster is set. As the upstream operator does after every change, a Job sets each such
/// namespace's roster to the cluster's nodes (their ids are known from the spec: `<rack>a<ordinal>`)
/// less `rosterNodeBlockList`, once the servers observe them all, and reclusters. It runs again
/// whenever the nodes change (its name is its content).
enum AerospikeRoster {
    /// The strong-consistency namespaces, by name.
    static func namespaces(_ spec: AerospikeSpec) -> [String] {
        (spec.config["namespaces"]?.arrayValue ?? []).compactMap { ns in
            guard ns["strong-consistency"] == .bool(true) else { return nil }
            return ns["name"]?.stringValue
        }
    }

    /// Every pod's node id as the servers print it: a hexadecimal number, upper-case, without
    /// leading zeros (rack 0's `0a3` is `A3`).
    static func nodeIds(_ spec: AerospikeSpec) -> [String] {
        spec.podsPerRack().flatMap { rack, count in (0..<count).map { printed("\(rack.id)a\($0)") } }
    }

    static func printed(_ id: String) -> String {
        let digits = id.uppercased().drop { $0 == "0" }
        return digits.isEmpty ? "0" : String(digits)
    }

    static func job(_ spec: AerospikeSpec, _ cluster: ClusterMetadata) -> [RenderedObject] {
        let scNamespaces = namespaces(spec)
        guard !scNamespaces.isEmpty else { return [] }
        let ids = nodeIds(spec).joined(separator: " ")
        let file = scNamespaces.map { "\($0) \(ids)\n" }.joined()
        let blocked = spec.rosterNodeBlockList.map { $0.uppercased() }.joined(separator: " ") + "\n"
        let (container, extraVolumes) = AerospikeUsers.asadmContainer("roster", spec, cluster)
        // Each pod waits up to 5 minutes for the nodes; then the Job controller starts another.
        return Kube.scriptJob(prefix: "\(cluster.name.prefix(45))-roster-", cluster, labels: AerospikeUsers.labels("roster", cluster),
                              files: [("blocked", blocked), ("roster", file), ("roster.sh", script)], volume: "roster",
                              container: container, extraVolumes: extraVolumes, backoffLimit: 6)
    }

    static let script = AerospikeUsers.common + "\n" + #"""
    # cairn: the rosters of an Aerospike cluster's strong-consistency namespaces.
    roster_file=${CAIRN_ROSTER:-/etc/cairn/aerospike/roster}
    blocked=$(cat "${CAIRN_BLOCKED:-/etc/cairn/aerospike/blocked}")
    [ -n "${CAIRN_NO_SECURITY:-}" ] || log_in

    # The roster info of namespace $1 from one server: roster=...:pending_roster=...:observed_nodes=...
    roster_info() {
        as_admin -e "asinfo -v roster:namespace=$1" 2>/dev/null | grep -o '^roster=[^ ]*' | head -n 1
    }

    # The comma-separated field $2 of the roster info $1 ("null" is none).
    field() {
        printf '%s\n' "$1" | tr ':' '\n' | sed -n "s/^$2=//p" | sed 's/^null$//'
    }

    # Comma-separated words, sorted, comma-separated.
    sorted() {
        printf '%s\n' "$1" | tr ',' '\n' | sed '/^$/d' | sort | paste -s -d, -
    }

    # Logs in again, once, when admin's password changed under way (the users Job, running beside
    # this one on a new cluster, replaces the default): as log_in does (the certificate for a PKI
    # admin, the Secret's password, else the default).
    relogin() {
        previous=$login previous_pki=$login_pki
        try_login && return 0
        login=$previous login_pki=$previous_pki
    }

    while read -r ns expected; do
        n=0
        while :; do
            info=$(roster_info "$ns")
            if [ -z "$info" ] && [ -z "${CAIRN_NO_SECURITY:-}" ]; then
                relogin
                info=$(roster_info "$ns")
            fi
            observed=$(field "$info" observed_nodes)
            missing=""
            for id in $expected; do
                case " $blocked " in *" $id "*) continue;; esac
                case ",$observed," in *",$id,"*|*",$id@"*) ;; *) missing="$missing $id";; esac
            done
            [ -n "$info" ] && [ -z "$missing" ] && break
            n=$((n + 1))
            if [ $n -ge "$tries" ]; then
                echo "cairn: namespace $ns: the servers do not observe node(s)${missing:- (no roster information)} after $tries tries" >&2
                exit 1
            fi
            sleep "$pause"
        done
        # The observed entries (with their @rack) of the cluster's nodes, less the blocked ones.
        desired=""
        for entry in $(printf '%s' "$observed" | tr ',' ' '); do
            id=${entry%%@*}
            case " $expected " in *" $id "*) ;; *) continue;; esac
            case " $blocked " in *" $id "*) continue;; esac
            desired="$desired,$entry"
        done
        desired=$(sorted "$desired")
        if [ "$desired" = "$(sorted "$(field "$info" roster)")" ] && [ "$desired" = "$(sorted "$(field "$info" pending_roster)")" ]; then
            echo "cairn: namespace $ns: roster $desired"
            continue
        fi
        manage "namespace $ns: stage the roster $desired" "manage roster stage nodes $desired ns $ns --no-warn" ""
        manage "recluster" "manage recluster" ""
    done < "$roster_file"

    """#
}
