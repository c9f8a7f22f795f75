public import ClusterSpecs
import Foundation

/// `cairn plan`'s three outputs: text for a terminal, Markdown for a pull-request comment, JSON
/// for tools. Pure functions of the plan.
public enum PlanReport {
    public struct Header: Sendable {
        /// What is compared, e.g. `main (1a2b3c4) -> feature (5d6e7f8)` or `live cluster -> HEAD (5d6e7f8)`.
        public var base: String
        public var head: String
        public var path: String

        public init(base: String, head: String, path: String) {
            self.base = base
            self.head = head
            self.path = path
        }
    }

    static func summaryLine(_ plan: ChangePlan) -> String {
        if plan.clusters.isEmpty {
            let note = " (\(plan.filesChanged) spec file\(plan.filesChanged == 1 ? "" : "s") changed: comments or formatting only)"
            return "no change to any rendered object" + (plan.filesChanged > 0 ? note : "")
        }
        let c = plan.clusters
        let o = plan.objectCounts
        return "\(c.count) cluster\(c.count == 1 ? "" : "s") changed (\(c.filter { $0.status == .created }.count) created, "
            + "\(c.filter { $0.status == .changed }.count) changed, \(c.filter { $0.status == .deleted }.count) deleted); "
            + "objects: \(o.added) added, \(o.changed) changed, \(o.deleted) deleted; "
            + "\(plan.podsRestarting) pod\(plan.podsRestarting == 1 ? "" : "s") restart; \(plan.blocked.count) blocked"
    }

    static func symbol(_ o: ChangePlan.ObjectChange) -> String {
        if o.blocked != nil { return "!" }
        switch o.action {
        case .added: return "+"
        case .changed: return "~"
        case .deleted: return "-"
        }
    }

    static func line(_ o: ChangePlan.ObjectChange) -> String {
        if let blocked = o.blocked { return "\(o.reference) blocked: \(blocked)" }
        return "\(o.reference) \(o.action.rawValue)" + (o.reason.map { ": \($0)" } ?? "")
    }

    static func rolloutLine(_ r: ChangePlan.Rollout) -> String {
        "\(r.statefulSet): \(r.pods.count) pod\(r.pods.count == 1 ? "" : "s") restart (\(r.pods.joined(separator: ", ")))"
    }

    // MARK: - Text

    public static func text(_ plan: ChangePlan, header: Header, diffs: Bool = true) -> String {
        var out = "cairn plan: \(header.base) -> \(header.head), spec files under \(header.path)\n"
        for e in plan.errors { out += "error: \(e)\n" }
        // A note that is a warning already says so (`SpecError.noteLine`).
        for n in plan.notes { out += (n.hasPrefix("warning: ") ? n : "note: \(n)") + "\n" }
        for c in plan.clusters {
            out += "\ncluster \(c.cluster) (\(c.file)): \(c.status.rawValue)\n"
            for o in c.objects { out += "  \(symbol(o)) \(line(o))\n" }
            for r in c.rollouts {
                out += "  rollout \(rolloutLine(r))\n"
                out += "    why: \(r.reasons.joined(separator: "; "))\n"
                out += "    how: \(r.order)\n"
            }
            for w in c.warnings { out += "  warning: \(w)\n" }
            if !c.kept.isEmpty { out += "  kept: \(c.kept.joined(separator: ", "))\n" }
            if diffs {
                for o in c.objects where !o.diff.isEmpty {
                    out += "\n  --- \(o.reference) (\(o.action.rawValue))\n"
                    out += o.diff.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map { "  \($0)\n" }.joined()
                }
            }
        }
        out += "\n" + summaryLine(plan) + (plan.errors.isEmpty ? "" : "; \(plan.errors.count) error\(plan.errors.count == 1 ? "" : "s")") + "\n"
        return out
    }

    // MARK: - Markdown

    // Everything from a spec file or the cluster is escaped for where it goes: it must never
    // start a heading, a list, a table or a link, close a code span or fence, or add a line.

    static func html(_ s: String) -> String {
        s.escapingControlCharacters.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;")
    }

    static func code(_ s: String) -> String { "`" + s.escapingControlCharacters.replacingOccurrences(of: "`", with: "'") + "`" }

    /// Prose with values in it (reasons, warnings, blocked changes), mid-line: what could open
    /// a code span, emphasis, a link or an HTML tag is escaped (line-start syntax cannot occur:
    /// newlines are escapes).
    static func text(_ s: String) -> String {
        var out = ""
        for c in s.escapingControlCharacters {
            if "\\`*_[]<>|".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }

    /// A code fence longer than any run of backticks in `body`, so the body cannot close it.
    static func fence(for body: String) -> String {
        var longest = 0, run = 0
        for c in body {
            if c == "`" { run += 1; longest = max(longest, run) } else { run = 0 }
        }
        return String(repeating: "`", count: max(3, longest + 1))
    }

    /// Fit for a pull-request comment: a summary table, then per cluster what restarts and
    /// why, then each object's diff folded away.
    /// The notes on accepted fields cairn does not use, as a Markdown list (empty without notes).
    static func notesSection(_ plan: ChangePlan) -> String {
        guard !plan.notes.isEmpty else { return "" }
        // Warnings (`SpecError.noteLine`: a Secret's values in git) first, under their own heading.
        let warnings = plan.notes.filter { $0.hasPrefix("warning: ") }.map { String($0.dropFirst("warning: ".count)) }
        let notes = plan.notes.filter { !$0.hasPrefix("warning: ") }
        var out = ""
        if !warnings.isEmpty { out += "\n**Warnings**:\n\n" + warnings.map { "- \(code($0))\n" }.joined() }
        if !notes.isEmpty { out += "\n**Notes** (fields accepted, not used by cairn):\n\n" + notes.map { "- \(code($0))\n" }.joined() }
        return out
    }

    public static func markdown(_ plan: ChangePlan, header: Header) -> String {
        var out = "### cairn plan: \(code(header.base)) → \(code(header.head))\n\n"
        if plan.clusters.isEmpty && plan.errors.isEmpty {
            out += "**No change to any rendered object.**"
            out += plan.filesChanged > 0 ? " \(plan.filesChanged) spec file\(plan.filesChanged == 1 ? "" : "s") changed: comments or formatting only.\n" : "\n"
            return out + notesSection(plan)
        }
        let c = plan.clusters
        let o = plan.objectCounts
        out += "| | |\n|---|---|\n"
        out += "| Clusters changed | \(c.count) (\(c.filter { $0.status == .created }.count) created, "
            + "\(c.filter { $0.status == .changed }.count) changed, \(c.filter { $0.status == .deleted }.count) deleted) |\n"
        out += "| Objects | \(o.added) added, \(o.changed) changed, \(o.deleted) deleted |\n"
        out += "| Pods restarting | \(plan.podsRestarting) |\n"
        out += "| Blocked changes | \(plan.blocked.count) |\n"
        if !plan.errors.isEmpty { out += "| Invalid spec files | \(plan.errors.count) error\(plan.errors.count == 1 ? "" : "s") |\n" }
        if !plan.errors.isEmpty {
            out += "\n**Errors in the head revision** (nothing of these clusters would be applied):\n\n"
            for e in plan.errors { out += "- \(code(e))\n" }
        }
        out += notesSection(plan)
        if !plan.blocked.isEmpty {
            out += "\n**Blocked** (cairn will not apply these):\n\n"
            for b in plan.blocked { out += "- \(code(b.reference)): \(text(b.blocked!))\n" }
        }
        for cluster in c {
            out += "\n#### \(code(cluster.cluster)): \(cluster.status.rawValue) (\(code(cluster.file)))\n\n"
            for r in cluster.rollouts {
                out += "- **Rollout** \(code(r.statefulSet)): \(r.pods.count) pod\(r.pods.count == 1 ? "" : "s") restart, "
                    + "in this order: \(r.pods.map(code).joined(separator: ", ")). "
                out += "Why: \(text(r.reasons.joined(separator: "; "))). How: \(text(r.order)).\n"
            }
            for w in cluster.warnings { out += "- ⚠️ \(text(w))\n" }
            if !cluster.kept.isEmpty { out += "- Kept: \(cluster.kept.map(code).joined(separator: ", "))\n" }
            if !cluster.rollouts.isEmpty || !cluster.warnings.isEmpty || !cluster.kept.isEmpty { out += "\n" }
            for object in cluster.objects {
                let state = object.blocked.map { "blocked: \($0)" } ?? object.action.rawValue + (object.reason.map { ": \($0)" } ?? "")
                out += "<details><summary>\(symbol(object)) <code>\(html(object.reference))</code> \(html(state))</summary>\n\n"
                let fence = fence(for: object.diff)
                out += "\(fence)diff\n\(object.diff)\(fence)\n\n</details>\n"
            }
        }
        return out
    }

    // MARK: - JSON

    public static func json(_ plan: ChangePlan, header: Header) -> JSONValue {
        let o = plan.objectCounts
        guard case .object(var out) = jsonBody(plan, header: header, counts: o) else { return .null }
        if !plan.notes.isEmpty { out["notes"] = .array(plan.notes.map(JSONValue.string)) }
        return .object(out)
    }

    private static func jsonBody(_ plan: ChangePlan, header: Header, counts o: (added: Int, changed: Int, deleted: Int)) -> JSONValue {
        [
            "base": .string(header.base), "head": .string(header.head), "path": .string(header.path),
            "summary": [
                "clusters": .int(plan.clusters.count), "objectsAdded": .int(o.added), "objectsChanged": .int(o.changed),
                "objectsDeleted": .int(o.deleted), "podsRestarting": .int(plan.podsRestarting), "blocked": .int(plan.blocked.count),
                "errors": .int(plan.errors.count), "filesChanged": .int(plan.filesChanged), "filesRendered": .int(plan.filesRendered),
                "exitCode": .int(Int(plan.exitCode)),
            ],
            "errors": .array(plan.errors.map(JSONValue.string)),
            "clusters": .array(plan.clusters.map { c in
                [
                    "cluster": .string(c.cluster), "file": .string(c.file), "status": .string(c.status.rawValue),
                    "objects": .array(c.objects.map { x in
                        var obj: JSONObject = ["object": .string(x.reference), "action": .string(x.action.rawValue)]
                        if let r = x.reason { obj["reason"] = .string(r) }
                        if let b = x.blocked { obj["blocked"] = .string(b) }
                        obj["diff"] = .string(x.diff)
                        return .object(obj)
                    }),
                    "rollouts": .array(c.rollouts.map { r in
                        ["statefulSet": .string(r.statefulSet), "pods": .array(r.pods.map(JSONValue.string)),
                         "order": .string(r.order), "reasons": .array(r.reasons.map(JSONValue.string))]
                    }),
                    "warnings": .array(c.warnings.map(JSONValue.string)),
                    "kept": .array(c.kept.map(JSONValue.string)),
                ]
            }),
        ]
    }
}
