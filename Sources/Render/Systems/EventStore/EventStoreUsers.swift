import ClusterSpecs

/// `users.customUsers`: created as the upstream operator creates them once the cluster is
/// healthy, by a Job on the server image that POSTs each to the HTTP API (`/users/`) as admin
/// with its initial password (cairn never connects to a database itself). A user that exists
/// (409) is left as it is: neither cairn nor upstream updates or deletes users.
enum EventStoreUsers {
    static let directory = "/etc/cairn/kurrentdb"

    static func job(_ spec: EventStoreSpec, _ users: EventStoreSpec.Users, _ cluster: ClusterMetadata) -> [RenderedObject] {
        // Node 0, by its cluster DNS name (it forwards to the leader); its certificate is checked
        // against the name clients are given: the FQDN, else the cluster DNS name.
        let node0 = "\(cluster.name)-0"
        let dnsName = "\(node0).\(cluster.name).\(cluster.namespace).svc.cluster.local"
        let fqdn = spec.advertised.clientStrategy == "FQDN" ? spec.advertised.fqdn(podName: node0, cluster: cluster) : nil
        let scheme = spec.security == nil ? "http" : "https"
        var container = Kube.Container(name: "users", image: spec.image)
        container.command = ["/bin/sh", "\(directory)/users.sh"]
        container.env = [
            Kube.env("KURRENTDB_URL", "\(scheme)://\(fqdn ?? dnsName):\(EventStoreRenderer.httpPort)"),
            Kube.env("KURRENTDB_CONNECT_TO", "\(dnsName):\(EventStoreRenderer.httpPort)"),
            Kube.envSecret("CAIRN_ADMIN_PASSWORD", secret: users.adminPassword.name, key: users.adminPassword.key),
        ]
        container.env += users.custom.enumerated().map { i, user in
            Kube.envSecret("CAIRN_PASSWORD_\(i)", secret: user.password.name, key: user.password.key)
        }
        container.volumeMounts = [Kube.mount("users", directory, readOnly: true)]
        var extraVolumes: [JSONValue] = []
        if let security = spec.security, let (volume, mount) = EventStoreRenderer.caVolume(security) {
            extraVolumes.append(volume)
            container.volumeMounts.append(mount)
            container.env.append(Kube.env("KURRENTDB_CA_DIR", EventStoreRenderer.caDirectory))
        }
        container.resources = ResourceRequirements(requests: ["cpu": try! Quantity(parsing: "10m"), "memory": try! Quantity(parsing: "32Mi")],
                                                   limits: ["memory": try! Quantity(parsing: "128Mi")])
        container.securityContext = ["allowPrivilegeEscalation": false]
        // Not the nodes' labels: the Job's pod must not count in their PodDisruptionBudget or
        // join their Service.
        let labels = ["app.kubernetes.io/name": "kurrentdb", "app.kubernetes.io/instance": "\(cluster.name)-users",
                      "app.kubernetes.io/component": "users"]
        return Kube.scriptJob(prefix: "\(cluster.name.prefix(46))-users-", cluster, labels: labels,
                              files: [("users", usersFile(users.custom)), ("logins", users.custom.map { $0.loginName + "\n" }.joined()),
                                      ("users.sh", script)], volume: "users",
                              container: container, extraVolumes: extraVolumes, backoffLimit: 6)
    }

    /// One line per user: its JSON without the password and the closing brace (canonical JSON
    /// holds no line break); line `i` takes its password from `CAIRN_PASSWORD_i`.
    static func usersFile(_ users: [EventStoreSpec.Users.Custom]) -> String {
        users.map { user in
            let json = JSONValue.object(["loginName": .string(user.loginName), "fullName": .string(user.fullName),
                                         "groups": .array(user.groups.map { .string($0) })]).canonicalJSON()
            return String(json.dropLast()) + "\n"
        }.joined()
    }

    static let script = #"""
    # cairn: the custom users of a KurrentDB cluster, from its users.customUsers. POSIX sh with
    # the image's curl; passwords come from the environment and never reach the log or a
    # command line.
    set -u
    tries=${CAIRN_TRIES:-60}
    pause=${CAIRN_PAUSE:-5}
    users_file=${CAIRN_USERS:-/etc/cairn/kurrentdb/users}
    logins_file=${CAIRN_LOGINS:-/etc/cairn/kurrentdb/logins}
    umask 077
    tmp=$(mktemp -d) || exit 1
    trap 'rm -rf "$tmp"' EXIT

    # A JSON string, and a curl configuration value: quotes and backslashes escaped (control
    # characters are refused before).
    escaped() {
        printf '%s' "$1" | sed 's/\\/\\\\/g; s/"/\\"/g'
    }

    for secret in CAIRN_ADMIN_PASSWORD $(i=0; while read -r _; do echo "CAIRN_PASSWORD_$i"; i=$((i + 1)); done < "$users_file"); do
        eval "value=\${$secret:-}"
        case "$value" in
            ''|*[[:cntrl:]]*)
                echo "cairn: the password in $secret is empty or holds a control character; change it in its Secret" >&2
                exit 1;;
        esac
    done
    printf 'user = "admin:%s"\n' "$(escaped "$CAIRN_ADMIN_PASSWORD")" > "$tmp/auth"
    ca=""
    if [ -n "${KURRENTDB_CA_DIR:-}" ]; then
        cat "$KURRENTDB_CA_DIR"/* > "$tmp/ca.pem" && ca="$tmp/ca.pem"
    fi

    # POSTs the body in $tmp/body to /users/; prints the HTTP status (000: no answer).
    post() {
        curl -sS -o "$tmp/answer" -w '%{http_code}' -K "$tmp/auth" ${ca:+--cacert "$ca"} \
            --connect-to "::$KURRENTDB_CONNECT_TO" --max-time 30 \
            -H 'Content-Type: application/json' --data-binary "@$tmp/body" "$KURRENTDB_URL/users/" 2>"$tmp/error"
    }

    i=0
    created=0
    while IFS= read -r user; do
        eval "password=\${CAIRN_PASSWORD_$i}"
        i=$((i + 1))
        printf '%s,"password":"%s"}' "$user" "$(escaped "$password")" > "$tmp/body"
        login=$(sed -n "${i}p" "$logins_file")
        n=0
        while :; do
            status=$(post)
            case "$status" in
                201) echo "cairn: created user $login"; created=$((created + 1)); break;;
                409) echo "cairn: user $login exists; left as it is"; break;;
                400|403)
                    echo "cairn: creating user $login: HTTP $status: $(head -c 500 "$tmp/answer")" >&2
                    exit 1;;
            esac
            # Anything else is tried again: no answer, a server starting (503), or 401 while a
            # new database has not yet made its admin.
            n=$((n + 1))
            if [ $n -ge "$tries" ]; then
                if [ "$status" = 401 ]; then
                    echo "cairn: the cluster refused admin's password after $tries tries: the initial passwords act when the database is created only; put admin's current password in its Secret" >&2
                else
                    echo "cairn: $KURRENTDB_URL (at $KURRENTDB_CONNECT_TO) did not take user $login after $tries tries: HTTP $status $(head -c 300 "$tmp/error")" >&2
                fi
                exit 1
            fi
            sleep "$pause"
        done
    done < "$users_file"
    echo "cairn: $created of $i users created"

    """#
}
