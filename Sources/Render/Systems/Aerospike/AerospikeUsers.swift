import ClusterSpecs

/// `aerospikeAccessControl`: the users inside the database, provisioned as the upstream operator
/// provisions them, by a Job that runs the server image's own `asadm` against the cluster (cairn
/// never connects to a database itself). The Job logs in as `admin` with the password of its
/// Secret, or with the default `admin` on a new cluster; creates the missing users, sets every
/// user's password from its Secret (key `password`, as upstream), grants the missing roles and
/// revokes the others, `admin` last so that the login holds to the end.
enum AerospikeUsers {
    static let directory = "/etc/cairn/aerospike"
    static let tlsDirectory = "/etc/cairn/aerospike-tls"

    static func job(_ spec: AerospikeSpec, _ cluster: ClusterMetadata) -> [RenderedObject] {
        guard !spec.users.isEmpty else { return [] }
        let users = ordered(spec.users)
        var (container, extraVolumes) = asadmContainer("users", spec, cluster)
        // A PKI user has no Secret: the script makes its password up.
        container.env += users.enumerated().map { i, user in
            user.pki ? Kube.env("CAIRN_PKI_\(i)", "1") : Kube.envSecret("CAIRN_PASSWORD_\(i)", secret: user.secretName, key: "password")
        }
        // Each pod tries to log in for up to 5 minutes (the servers may still be starting);
        // then the Job controller starts another after 10 s, 20 s, ...
        return Kube.scriptJob(prefix: "\(cluster.name.prefix(46))-users-", cluster, labels: labels("users", cluster),
                              files: [("users", usersFile(users)), ("users.sh", script)], volume: "users",
                              container: container, extraVolumes: extraVolumes, backoffLimit: 6)
    }

    static func labels(_ component: String, _ cluster: ClusterMetadata) -> [String: String] {
        ["app.kubernetes.io/name": "aerospike", "app.kubernetes.io/instance": cluster.name, "app.kubernetes.io/component": component]
    }

    /// A container on the server image that runs `<name>.sh` from its volume with asadm, as
    /// admin with its Secret's password when the cluster has security, over TLS when the
    /// service has no plain port.
    static func asadmContainer(_ name: String, _ spec: AerospikeSpec, _ cluster: ClusterMetadata) -> (Kube.Container, [JSONValue]) {
        var container = Kube.Container(name: name, image: spec.image)
        container.command = ["/bin/sh", "\(directory)/\(name).sh"]
        container.env = [
            Kube.env("AEROSPIKE_HOST", cluster.name),
            Kube.env("AEROSPIKE_PORT", String(spec.jobsOverTLS ? spec.ports.serviceTLS ?? spec.ports.client : spec.ports.client)),
            // asadm keeps its settings under $HOME (and, before 4.1, exits 0 without a word when
            // it cannot write them there).
            Kube.env("HOME", "/tmp"),
        ]
        var extraVolumes: [JSONValue] = []
        container.volumeMounts = [Kube.mount(name, directory, readOnly: true)]
        // No plain service port: asadm connects over TLS, checks the servers' certificates
        // against the service's tls-name and the CA, and presents the client certificate.
        if spec.jobsOverTLS, let tlsName = spec.ports.serviceTLSName, let cert = spec.clientCertificate {
            container.env += [Kube.env("AEROSPIKE_TLS_NAME", tlsName), Kube.env("AEROSPIKE_TLS_CAFILE", "\(tlsDirectory)/\(cert.caFile)")]
            if let certFile = cert.certFile, let keyFile = cert.keyFile {
                container.env += [Kube.env("AEROSPIKE_TLS_CERTFILE", "\(tlsDirectory)/\(certFile)"),
                                  Kube.env("AEROSPIKE_TLS_KEYFILE", "\(tlsDirectory)/\(keyFile)")]
            }
            extraVolumes.append(Kube.secretVolume("tls", secret: cert.secretName))
            container.volumeMounts.append(Kube.mount("tls", tlsDirectory, readOnly: true))
        }
        if spec.adminIsPKI {
            container.env.append(Kube.env("CAIRN_ADMIN_PKI", "1"))
        } else if let admin = spec.users.first(where: { $0.name == "admin" }) {
            container.env.append(Kube.envSecret("CAIRN_PASSWORD_ADMIN", secret: admin.secretName, key: "password"))
        } else {
            container.env.append(Kube.env("CAIRN_NO_SECURITY", "1"))
        }
        container.resources = ResourceRequirements(requests: ["cpu": try! Quantity(parsing: "10m"), "memory": try! Quantity(parsing: "64Mi")],
                                                   limits: ["memory": try! Quantity(parsing: "256Mi")])
        container.securityContext = ["allowPrivilegeEscalation": false]
        return (container, extraVolumes)
    }

    /// The spec's users in the order the Job provisions them: by name, `admin` last.
    static func ordered(_ users: [AerospikeSpec.User]) -> [AerospikeSpec.User] {
        users.sorted { a, b in
            if (a.name == "admin") != (b.name == "admin") { return b.name == "admin" }
            return a.name < b.name
        }
    }

    /// One line per user: its name and roles, separated by spaces (names and roles are checked
    /// to hold no whitespace); line `i` takes its password from `CAIRN_PASSWORD_i`.
    static func usersFile(_ users: [AerospikeSpec.User]) -> String {
        users.map { ([$0.name] + $0.roles.sorted()).joined(separator: " ") + "\n" }.joined()
    }

    /// What the users and roster Jobs share: asadm as admin (or without a login on a cluster
    /// without security), a manage command whose failure stops the Job with asadm's own words
    /// (passwords masked), and the login: admin's Secret's password, else the default.
    static let common = #"""
    # POSIX sh; runs the server image's asadm. Passwords come from the environment and never
    # reach the log.
    set -u
    tries=${CAIRN_TRIES:-60}
    pause=${CAIRN_PAUSE:-5}
    login=""
    login_pki=0

    # asadm as admin with the password $login (read by -P from standard input).
    as_admin() {
        if [ -n "${AEROSPIKE_TLS_NAME:-}" ]; then
            set -- -h "$AEROSPIKE_HOST:$AEROSPIKE_TLS_NAME:$AEROSPIKE_PORT" --tls-enable --tls-cafile "$AEROSPIKE_TLS_CAFILE" \
                ${AEROSPIKE_TLS_CERTFILE:+--tls-certfile "$AEROSPIKE_TLS_CERTFILE" --tls-keyfile "$AEROSPIKE_TLS_KEYFILE"} "$@"
        else
            set -- -h "$AEROSPIKE_HOST" -p "$AEROSPIKE_PORT" "$@"
        fi
        # Standard input is never the caller's (a loop's file): asadm reads only a password.
        if [ -n "${CAIRN_NO_SECURITY:-}" ]; then
            asadm "$@" </dev/null
        elif [ "$login_pki" = 1 ]; then
            asadm "$@" --auth PKI </dev/null
        else
            printf '%s\n' "$login" | asadm "$@" -U admin -P
        fi
    }

    # A word for asadm's command line (shlex): single-quoted, a quote as '\''.
    quoted() {
        printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
    }

    # Standard input with every occurrence of $CAIRN_MASK replaced by ***.
    masked() {
        awk 'BEGIN { m = ENVIRON["CAIRN_MASK"] }
             { out = ""; line = $0
               while (m != "" && (i = index(line, m)) > 0) { out = out substr(line, 1, i - 1) "***"; line = substr(line, i + length(m)) }
               print out line }'
    }

    # One manage command; its output (passwords masked) only when it fails.
    manage() { # what, command, password in the command
        out=$(as_admin --enable -e "$2" 2>&1)
        status=$?
        if [ $status -ne 0 ] || printf '%s\n' "$out" | grep -q '^ERROR'; then
            secret=$login
            [ "$login" = admin ] && secret=""  # the default is no secret, and masking it would hide the word admin
            printf '%s\n' "$out" | CAIRN_MASK="$3" masked | CAIRN_MASK="$secret" masked >&2
            echo "cairn: $1 failed (asadm exit $status)" >&2
            exit 1
        fi
        echo "cairn: $1"
    }

    # "name role role ..." for each user on the server, from asadm's JSON for show users
    # (json.dumps with indent 2: each field is {"raw": ..., "converted": "..."} on lines of its
    # own; converted roles are comma-separated, "--" for none).
    user_table() {
        as_admin -j -e "show users" 2>/dev/null | awk '
            function value(line) { sub(/^[^:]*: *"/, "", line); sub(/",? *$/, "", line); return line }
            /^ *"[^"]*": *\{ *$/ { key = $0; sub(/^ *"/, "", key); sub(/".*/, "", key); next }
            /^ *"converted": / {
                if (key == "User") { if (user != "") print user roles; user = value($0); roles = "" }
                else if (key == "Roles") { r = value($0); if (r != "--") { gsub(/,/, " ", r); roles = " " r } }
            }
            END { if (user != "") print user roles }'
    }

    # The line of user $1 in $table, if any.
    row() {
        printf '%s\n' "$table" | awk -v n="$1" '$1 == n'
    }

    # The words of $1 that are not words of $2.
    minus() {
        for w in $1; do
            case " $2 " in *" $w "*) ;; *) printf ' %s' "$w";; esac
        done
    }

    # One try of each way admin may log in (sets $login or $login_pki, and $table); fails when
    # none worked. A PKI admin logs in with the client certificate, or on a new cluster with
    # the default password; any other admin with its Secret's password, else the default.
    try_login() {
        if [ -n "${CAIRN_ADMIN_PKI:-}" ]; then
            login_pki=1
            table=$(user_table)
            if [ -n "$(row admin)" ]; then return 0; fi
            login_pki=0
        fi
        for candidate in ${CAIRN_PASSWORD_ADMIN:+"$CAIRN_PASSWORD_ADMIN"} admin; do
            login=$candidate
            table=$(user_table)
            if [ -n "$(row admin)" ]; then return 0; fi
            login=""
        done
        return 1
    }

    # Logs in as admin, trying for a while: the servers may be starting.
    log_in() {
        n=0
        while [ $n -lt "$tries" ]; do
            try_login && break
            n=$((n + 1))
            [ $n -lt "$tries" ] && sleep "$pause"
        done
        if [ -z "$login" ] && [ "$login_pki" = 0 ]; then
            if [ -n "${CAIRN_ADMIN_PKI:-}" ]; then
                echo "cairn: could not log in to $AEROSPIKE_HOST:$AEROSPIKE_PORT as admin, with the client certificate nor the default password, after $tries tries" >&2
            else
                echo "cairn: could not log in to $AEROSPIKE_HOST:$AEROSPIKE_PORT as admin, with its Secret's password nor the default one, after $tries tries" >&2
            fi
            exit 1
        fi
        if [ "$login" = admin ] && [ "${CAIRN_PASSWORD_ADMIN:-}" != admin ]; then echo "cairn: logged in with the default password: a new cluster"; fi
        if [ "$login_pki" = 1 ]; then echo "cairn: logged in with the client certificate"; fi
    }
    """#

    static let script = common + "\n" + #"""
    # cairn: the users of an Aerospike cluster, from its aerospikeAccessControl.
    users_file=${CAIRN_USERS:-/etc/cairn/aerospike/users}
    nl='
    '
    tab=$(printf '\t')
    # Every password first, so that nothing is changed when one cannot be used: asadm reads a
    # password stripped (-P), splits commands at ';', takes a backslash as an escape even
    # between single quotes, and reads its keywords as keywords.
    # A PKI user's password: random, never stored or shown (only its certificate logs it in).
    made_up() {
        od -An -N24 -tx1 /dev/urandom | tr -d ' \n'
    }

    i=0
    while read -r name roles; do
        eval "pki=\${CAIRN_PKI_$i:-}"
        eval "password=\${CAIRN_PASSWORD_$i:-}"
        i=$((i + 1))
        [ -n "$pki" ] && continue
        case "$password" in
            *';'*|*'\'*|*"$nl"*|' '*|*' '|"$tab"*|*"$tab"|''|password|roles|role)
                echo "cairn: the password of $name cannot be given to asadm: it is empty, a keyword of asadm's, holds ';', a backslash or a line break, or starts or ends with whitespace; change it in its Secret" >&2
                exit 1;;
        esac
    done < "$users_file"

    log_in

    i=0
    while read -r name roles; do
        eval "pki=\${CAIRN_PKI_$i:-}"
        eval "password=\${CAIRN_PASSWORD_$i:-}"
        i=$((i + 1))
        [ -n "$pki" ] && password=$(made_up)
        if [ -z "$password" ]; then
            echo "cairn: could not make up a password for $name (od, /dev/urandom)" >&2
            exit 1
        fi
        line=$(row "$name")
        if [ -z "$line" ]; then
            command="manage acl create user $name password $(quoted "$password")"
            [ -n "$roles" ] && command="$command roles $roles"
            manage "create user $name" "$command" "$password"
        else
            current=${line#"$name"}
            grant=$(minus "$roles" "$current")
            revoke=$(minus "$current" "$roles")
            [ -n "$grant" ] && manage "grant $name$grant" "manage acl grant user $name roles$grant" ""
            [ -n "$revoke" ] && manage "revoke $name$revoke" "manage acl revoke user $name roles$revoke" ""
            # The password last: admin's ends the login's.
            manage "set the password of $name" "manage acl set-password user $name password $(quoted "$password")" "$password"
        fi
        [ "$name" = admin ] && [ "$login_pki" = 0 ] && login=$password
    done < "$users_file"
    echo "cairn: $i users provisioned"

    """#
}
