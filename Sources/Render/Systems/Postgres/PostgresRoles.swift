import ClusterSpecs

/// What a PostgreSQL cluster's spec asks for inside the database (the roles of `users`, the
/// databases of `databases`, and `preparedDatabases` with their roles, schemas, default
/// privileges and extensions) and the psql script that makes it so. Pure.
///
/// The script is idempotent and only adds, as the upstream operator's sync does: it creates what
/// is missing, sets the options and passwords the spec gives, grants missing memberships and
/// default privileges, and never drops, revokes or renames anything. A user taken out of the spec
/// stays in the database, and a flag taken out of a user's list stays set until the spec says
/// `no<flag>` (upstream: "it never strips ... the already assigned flag").
enum PostgresRoles {
    struct Role: Hashable {
        var name: String
        /// Upper-case role options (LOGIN, NOLOGIN, CREATEDB, ...).
        var options: [String]
        /// Roles this one is a member of (`IN ROLE`).
        var memberOf: [String] = []
        /// The role made a member of this one with the admin option (`ADMIN` of CREATE ROLE).
        /// Spilo's `admin` is granted only where it exists.
        var admin: String?
        /// `search_path` of the role, when the spec implies one.
        var searchPath: [String]?
        /// A credentials Secret holds its password, which every run sets.
        var hasSecret: Bool
    }

    /// The role Spilo creates for its team members; the upstream operator makes it the admin of
    /// every role it creates (`enable_admin_role_for_users`, on by default).
    static let spiloAdmin = "admin"

    /// The roles of `users`, by name (so that the order of the file changes nothing): LOGIN
    /// unless `nologin` is given, as upstream.
    static func userRoles(_ spec: PostgresSpec) -> [Role] {
        spec.users.sorted { $0.name < $1.name }.map { user in
            var options = Set(user.flags.map { $0.uppercased() })
            if !options.contains("LOGIN"), !options.contains("NOLOGIN") { options.insert("LOGIN") }
            return Role(name: user.name, options: options.sorted(), admin: spiloAdmin, hasSecret: true)
        }
    }

    /// The roles one prepared database gets, database-wide first, then per schema: `<p>_owner`,
    /// `<p>_reader`, `<p>_writer` (NOLOGIN; the writer a member of the reader) and, with
    /// `defaultUsers`, `<p>_owner_user`, `<p>_reader_user`, `<p>_writer_user` (LOGIN, each a
    /// member of its counterpart), where `<p>` is the database, or `<db>_<schema>`. The owner
    /// roles are administered by the level above (Spilo's `admin`, or `<db>_owner`), the others
    /// by their level's owner.
    static func preparedRoles(_ db: PostgresSpec.PreparedDatabase) -> [Role] {
        func level(_ prefix: String, admin: String, users: Bool, searchPath: [String]) -> [Role] {
            var roles: [Role] = []
            for suffix in ["owner", "reader", "writer"] + (users ? ["owner_user", "reader_user", "writer_user"] : []) {
                let isUser = suffix.hasSuffix("_user")
                var memberOf: [String] = []
                if suffix == "writer" { memberOf = ["\(prefix)_reader"] }
                if isUser { memberOf = ["\(prefix)_\(suffix.dropLast(5))"] }
                roles.append(Role(name: "\(prefix)_\(suffix)", options: [isUser ? "LOGIN" : "NOLOGIN"], memberOf: memberOf,
                                  admin: suffix.hasPrefix("owner") ? admin : "\(prefix)_owner", searchPath: searchPath,
                                  hasSecret: isUser))
            }
            return roles
        }
        var roles = level(db.name, admin: spiloAdmin, users: db.defaultUsers, searchPath: ["$user"] + db.schemas.map(\.name))
        for schema in db.schemas where schema.defaultRoles {
            roles += level("\(db.name)_\(schema.name)", admin: "\(db.name)_owner", users: schema.defaultUsers,
                           searchPath: ["$user", schema.name])
        }
        return roles
    }

    /// Every role the spec asks for, `users` first.
    static func roles(_ spec: PostgresSpec) -> [Role] {
        userRoles(spec) + spec.preparedDatabases.flatMap(preparedRoles) + (spec.pooler.map { [poolerRole($0)] } ?? [])
    }

    /// The connection pooler's role, as the upstream operator makes it: LOGIN, with a
    /// credentials Secret.
    static func poolerRole(_ pooler: PostgresSpec.Pooler) -> Role {
        Role(name: pooler.user, options: ["LOGIN"], hasSecret: true)
    }

    /// Whether the spec asks for anything inside the database at all.
    static func isEmpty(_ spec: PostgresSpec) -> Bool {
        spec.users.isEmpty && spec.databases.isEmpty && spec.preparedDatabases.isEmpty && spec.pooler == nil
    }

    /// The pooler's lookup function, as the upstream operator installs it in every database:
    /// PgBouncer, logged in as the pooler's role, asks it for the password verifier of the role
    /// a client logs in as. (The function reads pg_shadow as its owner, the superuser; only
    /// the pooler's role may call it.)
    static func poolerScript(_ pooler: PostgresSpec.Pooler) -> String {
        let schema = ident(pooler.schema), user = ident(pooler.user)
        return """
        -- Written by cairn: the connection pooler's lookup function, run in every database.
        SET client_min_messages = warning;
        SET synchronous_commit = 'local';
        CREATE SCHEMA IF NOT EXISTS \(schema);
        CREATE OR REPLACE FUNCTION \(schema).user_lookup(in i_username text, out uname text, out phash text)
        RETURNS record AS $$
        BEGIN
            SELECT usename, passwd FROM pg_catalog.pg_shadow
            WHERE usename = i_username INTO uname, phash;
            RETURN;
        END;
        $$ LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp;
        REVOKE ALL ON FUNCTION \(schema).user_lookup(text) FROM public, \(user);
        GRANT EXECUTE ON FUNCTION \(schema).user_lookup(text) TO \(user);
        GRANT USAGE ON SCHEMA \(schema) TO \(user);

        """
    }

    /// After the script, with a pooler: its lookup function in every database that takes
    /// connections (names psql's -d could take for something else are skipped, and said).
    static let runPooler = """

    psql -X -A -t -c "SELECT datname FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname ~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$' ORDER BY 1" |
    while IFS= read -r db; do
      psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f /etc/cairn/sql/pooler.sql || exit 1
    done
    skipped=$(psql -X -A -t -c "SELECT count(*) FROM pg_database WHERE datallowconn AND NOT datistemplate AND datname !~ '^[A-Za-z0-9_][A-Za-z0-9_.-]*$'")
    [ "$skipped" = 0 ] || echo "cairn: $skipped database(s) with names psql cannot take as they are got no pooler lookup function" >&2
    echo "cairn: the pooler's lookup function is in every database"
    """

    /// The psql variable holding a role's password verifier (set by `verifiers.py`).
    static func passwordVariable(_ role: String) -> String { "password_\(role)" }
    /// The environment variable that gives `verifiers.py` a role's password.
    static let passwordEnvPrefix = "CAIRN_PASSWORD_"

    static func ident(_ s: String) -> String { "\"" + s.replacingAll("\"", with: "\"\"") + "\"" }
    static func literal(_ s: String) -> String { "'" + s.replacingAll("'", with: "''") + "'" }

    /// The script, for `psql -v ON_ERROR_STOP=1` connected as the superuser to the `postgres`
    /// database, after the `\set` lines of `verifiers.py`.
    static func script(_ spec: PostgresSpec, cluster: ClusterMetadata) -> String {
        let roles = roles(spec)
        var out: [String] = [
            "-- Written by cairn for the PostgreSQL cluster \(cluster.namespace)/\(cluster.name): the roles and databases its spec",
            "-- asks for. Idempotent, and it only adds: nothing is dropped, revoked or renamed.",
        ]
        let session = ["SET client_min_messages = warning;", "SET synchronous_commit = 'local';"]
        out += session
        if !roles.isEmpty { out += ["", "-- Roles, with the options and passwords the spec gives."] }
        for role in roles {
            let name = literal(role.name)
            // ADMIN only when the role is created, as upstream: a role that exists keeps its
            // memberships (granting admin one would fail where its members already are members
            // of it, and hand its members roles they never had). Spilo's admin where it exists.
            let missing = "NOT EXISTS (SELECT FROM pg_roles WHERE rolname = \(name))"
            let create = "CREATE ROLE \(ident(role.name))"
            if let admin = role.admin {
                let withAdmin = literal("\(create) ADMIN \(ident(admin))")
                if admin == spiloAdmin {
                    out.append("SELECT \(withAdmin) WHERE \(missing) AND EXISTS (SELECT FROM pg_roles WHERE rolname = \(literal(admin))) \\gexec")
                    out.append("SELECT \(literal(create)) WHERE \(missing) \\gexec")
                } else {
                    out.append("SELECT \(withAdmin) WHERE \(missing) \\gexec")
                }
            } else {
                out.append("SELECT \(literal(create)) WHERE \(missing) \\gexec")
            }
            // Options only add, as upstream: NOLOGIN is what CREATE ROLE gives, and an existing
            // role keeps LOGIN.
            let options = role.options.filter { $0 != "NOLOGIN" }
            if !options.isEmpty { out.append("ALTER ROLE \(ident(role.name)) WITH \(options.joined(separator: " "));") }
            if role.hasSecret { out.append("ALTER ROLE \(ident(role.name)) PASSWORD :'\(passwordVariable(role.name))';") }
            if let path = role.searchPath {
                out.append("ALTER ROLE \(ident(role.name)) SET search_path TO \(path.map(ident).joined(separator: ", "));")
            }
        }
        var grants: [String] = []
        for role in roles {
            for group in role.memberOf { grants.append(grant(group, to: role.name)) }
        }
        if !grants.isEmpty { out += ["", "-- Memberships the spec implies; existing ones are left as they are."] + grants }

        let databases = spec.databases.sorted { $0.key < $1.key }.map { (name: $0.key, owner: $0.value) }
            + spec.preparedDatabases.map { (name: $0.name, owner: "\($0.name)_owner") }
        if !databases.isEmpty { out += ["", "-- Databases and their owners."] }
        for db in databases {
            out.append("SELECT \(literal("CREATE DATABASE \(ident(db.name)) OWNER \(ident(db.owner))")) "
                       + "WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = \(literal(db.name))) \\gexec")
            out.append("ALTER DATABASE \(ident(db.name)) OWNER TO \(ident(db.owner));")
        }
        for db in spec.preparedDatabases {
            out += ["", "-- Prepared database \(db.name): schemas, default privileges, extensions.", "\\connect \(ident(db.name))"] + session
            out += preparedDatabase(db)
        }
        return out.joined(separator: "\n") + "\n"
    }

    /// `GRANT group TO member`, when the membership is not there yet, and not the other way
    /// round either (which PostgreSQL refuses as circular).
    static func grant(_ group: String, to member: String) -> String {
        func direct(_ g: String, _ m: String) -> String {
            "EXISTS (SELECT FROM pg_auth_members a JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles r ON r.oid = a.member "
                + "WHERE g.rolname = \(literal(g)) AND r.rolname = \(literal(m)))"
        }
        return "SELECT \(literal("GRANT \(ident(group)) TO \(ident(member))")) WHERE NOT \(direct(group, member)) "
            + "AND NOT \(direct(member, group)) \\gexec"
    }

    /// Inside a prepared database: its schemas, the default privileges the upstream operator
    /// defines (database-wide for the database's owners, per schema for each schema's), and
    /// its extensions. Unlike upstream, which defines default privileges only when it has just
    /// created the database or schema, cairn grants them on every run: grants only add, and a
    /// `defaultUsers` turned on later gets them too.
    static func preparedDatabase(_ db: PostgresSpec.PreparedDatabase) -> [String] {
        let d = db.name
        var out: [String] = []
        for schema in db.schemas {
            let owner = schema.defaultRoles ? "\(d)_\(schema.name)_owner" : "\(d)_owner"
            out.append("CREATE SCHEMA IF NOT EXISTS \(ident(schema.name)) AUTHORIZATION \(ident(owner));")
        }
        for owner in ["\(d)_owner"] + (db.defaultUsers ? ["\(d)_owner_user"] : []) {
            out += defaultPrivileges(owner: owner, prefix: d, schema: nil)
        }
        for schema in db.schemas {
            let s = schema.name
            let schemaOwner = schema.defaultRoles ? "\(d)_\(s)_owner" : "\(d)_owner"
            var pairs = [(owner: schemaOwner, prefix: d)]
            if schema.defaultRoles {
                if schema.defaultUsers { pairs.append(("\(d)_\(s)_owner_user", d)) }
                let owners = ["\(d)_owner"] + (db.defaultUsers ? ["\(d)_owner_user"] : [])
                    + ["\(d)_\(s)_owner"] + (schema.defaultUsers ? ["\(d)_\(s)_owner_user"] : [])
                pairs += owners.map { ($0, "\(d)_\(s)") }
            } else if db.defaultUsers {
                pairs.append(("\(d)_owner_user", d))
            }
            for (owner, prefix) in pairs { out += defaultPrivileges(owner: owner, prefix: prefix, schema: s) }
        }
        for e in db.extensions {
            out.append("CREATE EXTENSION IF NOT EXISTS \(ident(e.name)) SCHEMA \(ident(e.schema));")
            // Only an extension that can move (upstream logs the error of one that cannot and
            // goes on; here it stays where it is, and the rest of the script runs).
            out.append("SELECT format('ALTER EXTENSION %I SET SCHEMA %I', e.extname, \(literal(e.schema))) FROM pg_extension e "
                       + "JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = \(literal(e.name)) "
                       + "AND n.nspname <> \(literal(e.schema)) AND e.extrelocatable \\gexec")
        }
        // The upstream pairs repeat a schema's USAGE grant; once is enough.
        var seen: Set<String> = []
        return out.filter { seen.insert($0).inserted }
    }

    /// The upstream operator's default privileges for objects `owner` creates (in `schema`, or
    /// anywhere): `<prefix>_reader` reads, `<prefix>_writer` writes, both use types and run
    /// functions.
    static func defaultPrivileges(owner: String, prefix: String, schema: String?) -> [String] {
        let reader = ident("\(prefix)_reader"), writer = ident("\(prefix)_writer")
        let both = "\(reader), \(writer)"
        let head = "ALTER DEFAULT PRIVILEGES FOR ROLE \(ident(owner))" + (schema.map { " IN SCHEMA \(ident($0))" } ?? "")
        var out: [String] = []
        if let schema {
            out.append("GRANT USAGE ON SCHEMA \(ident(schema)) TO \(both);")
        } else {
            out.append("\(head) GRANT USAGE ON SCHEMAS TO \(both);")
        }
        out += [
            "\(head) GRANT SELECT ON TABLES TO \(reader);",
            "\(head) GRANT SELECT ON SEQUENCES TO \(reader);",
            "\(head) GRANT INSERT, UPDATE, DELETE ON TABLES TO \(writer);",
            "\(head) GRANT USAGE, UPDATE ON SEQUENCES TO \(writer);",
            "\(head) GRANT EXECUTE ON FUNCTIONS TO \(both);",
            "\(head) GRANT USAGE ON TYPES TO \(both);",
        ]
        return out
    }

    /// Prints a psql `\set` line per `CAIRN_PASSWORD_<role>` variable with the password's
    /// verifier, computed here so that no password is ever in a statement (the server's log,
    /// pg_stat_statements, psql's error output).
    static let verifiers = #"""
    # Written by cairn: prints a psql \set line per CAIRN_PASSWORD_<role> variable, holding the
    # password's verifier (SCRAM-SHA-256 as PostgreSQL computes it, or md5 when
    # PASSWORD_ENCRYPTION is md5), so that no password is ever part of a statement.
    import base64, hashlib, hmac, os, unicodedata

    def scram(password):
        # PostgreSQL's SASLprep leaves ASCII as it is; NFKC is its normalisation for the rest.
        if not password.isascii():
            password = unicodedata.normalize("NFKC", password)
        salt = os.urandom(16)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 4096)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        b64 = lambda b: base64.b64encode(b).decode()
        return "SCRAM-SHA-256$4096:%s$%s:%s" % (b64(salt), b64(hashlib.sha256(client_key).digest()), b64(server_key))

    method = os.environ.get("PASSWORD_ENCRYPTION", "scram-sha-256")
    prefix = "CAIRN_PASSWORD_"
    for key in sorted(os.environ):
        if not key.startswith(prefix):
            continue
        role, password = key[len(prefix):], os.environ[key]
        if method == "md5":
            verifier = "md5" + hashlib.md5((password + role).encode()).hexdigest()
        else:
            verifier = scram(password)
        print("\\set password_%s '%s'" % (role, verifier))

    """#

    /// The job's command: wait (bounded) for the master to answer, then run the script once.
    /// As the pod's first process, the shell ends on SIGTERM only when told to.
    static let run = """
    set -eu
    trap 'exit 143' TERM
    for tool in psql python3; do
      command -v "$tool" >/dev/null || { echo "cairn: $tool is not in this image (Spilo's psql and python3 are needed)" >&2; exit 1; }
    done
    tries=0
    until answer=$(psql -X -q -c 'SELECT 1' 2>&1 >/dev/null); do
      tries=$((tries + 1))
      if [ "$tries" -ge 60 ]; then echo "cairn: the master $PGHOST:$PGPORT did not answer for 5 minutes: $answer" >&2; break; fi
      sleep 5
    done
    verifiers=$(python3 /etc/cairn/sql/verifiers.py)
    printf '%s\\n' "$verifiers" | psql -X -q -v ON_ERROR_STOP=1 -f - -f /etc/cairn/sql/roles.sql
    echo "cairn: roles and databases are as the spec says"
    """
}
