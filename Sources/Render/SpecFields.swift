import ClusterSpecs

/// Fields the systems' specs read alike.
extension Field {
    /// The name of a Secret in the cluster's namespace.
    var secretName: String? {
        guard let n = nonEmptyString else { return nil }
        guard Names.isDNS1123Subdomain(n) else {
            fail("'\(n)' is not a valid Secret name")
            return nil
        }
        return n
    }

    /// A key of a Secret, which becomes a file name where it is mounted.
    var secretKeyName: String? {
        guard let k = nonEmptyString else { return nil }
        guard k.count <= 253, k != ".", k != "..", k.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._".contains($0)) }) else {
            fail("'\(k)' is not a key of a Secret (letters, digits, '-', '_', '.')")
            return nil
        }
        return k
    }
}
