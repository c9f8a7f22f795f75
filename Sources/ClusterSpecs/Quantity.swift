/// A Kubernetes resource quantity (`10Gi`, `500m`, `1.5`, `1e3`), kept exactly and printed in
/// the canonical form the API server stores, so that a rendered object diffs clean against the
/// live one (`1000m` is stored as `1`, `0.5` as `500m`, `2048Mi` as `2Gi`).
public struct Quantity: Sendable, Hashable, Comparable, CustomStringConvertible {
    public enum Format: Sendable, Hashable {
        case decimalSI
        case binarySI
        case decimalExponent
    }

    /// The value is `mantissa * 10^exponent`, with no trailing zeros in `mantissa`.
    public let mantissa: Int
    public let exponent: Int
    public let format: Format

    public struct ParseError: Error, Sendable {
        public let message: String
    }

    /// Parses a quantity.
    ///
    /// - Throws: `ParseError` with a message naming the accepted forms.
    public init(parsing text: String) throws(ParseError) {
        let invalid = ParseError(message: "'\(text)' is not a quantity (examples: 10Gi, 512Mi, 500m, 2)")
        let scalars = Array(text.unicodeScalars)
        var i = 0
        var negative = false
        if i < scalars.count, scalars[i] == "+" || scalars[i] == "-" {
            negative = scalars[i] == "-"
            i += 1
        }
        var digits: [UInt32] = []
        var fractionDigits = 0
        var sawPoint = false
        while i < scalars.count {
            let c = scalars[i]
            if c == "." {
                if sawPoint { throw invalid }
                sawPoint = true
            } else if c.value >= 48, c.value <= 57 {
                digits.append(c.value - 48)
                if sawPoint { fractionDigits += 1 }
            } else {
                break
            }
            i += 1
        }
        guard !digits.isEmpty else { throw invalid }
        // 19 significant digits fit an Int; more fraction digits than that are finer than the
        // nano precision the API server keeps.
        guard fractionDigits <= 40 else { throw ParseError(message: "'\(text)' has too many decimal places") }
        let suffix = String(String.UnicodeScalarView(scalars[i...]))

        var mantissa = 0
        for d in digits {
            let (m1, o1) = mantissa.multipliedReportingOverflow(by: 10)
            let (m2, o2) = m1.addingReportingOverflow(Int(d))
            if o1 || o2 { throw ParseError(message: "'\(text)' is too large a quantity") }
            mantissa = m2
        }
        var exponent = -fractionDigits
        var format = Format.decimalSI
        let binary: [String: Int] = ["Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6]
        let decimal: [String: Int] = ["n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18]
        if let power = binary[suffix] {
            format = .binarySI
            for _ in 0..<power {
                let (m, o) = mantissa.multipliedReportingOverflow(by: 1024)
                if o { throw ParseError(message: "'\(text)' is too large a quantity") }
                mantissa = m
            }
        } else if let e = decimal[suffix] {
            exponent += e
        } else if let first = suffix.first, first == "e" || first == "E", let e = Int(suffix.dropFirst()),
                  suffix.dropFirst().allSatisfy({ $0.isNumber || $0 == "-" || $0 == "+" })
        {
            // Bounded before any arithmetic: no overflow, and no loop below runs long.
            guard e.magnitude <= UInt(Limits.quantityExponent) else {
                throw ParseError(message: "'\(text)': the exponent must be between -\(Limits.quantityExponent) and \(Limits.quantityExponent)")
            }
            format = .decimalExponent
            exponent += e
        } else {
            throw invalid
        }
        if negative { mantissa = -mantissa }
        // Normalise: no trailing zeros; below nano precision the API server rounds up.
        while mantissa != 0, mantissa % 10 == 0 {
            mantissa /= 10
            exponent += 1
        }
        while exponent < -9 {
            mantissa = mantissa / 10 + (mantissa % 10 > 0 ? 1 : 0)
            exponent += 1
        }
        if mantissa == 0 { exponent = 0 }
        self.mantissa = mantissa
        self.exponent = exponent
        self.format = format
    }

    public var isNegative: Bool { mantissa < 0 }
    public var isZero: Bool { mantissa == 0 }

    /// The approximate value, for comparisons and arithmetic where exactness does not matter.
    public var doubleValue: Double {
        Double(mantissa) * pow10(exponent)
    }

    private func pow10(_ e: Int) -> Double {
        var r = 1.0
        if e >= 0 { for _ in 0..<e { r *= 10 } } else { for _ in 0..<(-e) { r /= 10 } }
        return r
    }

    /// The exact integer value, when the quantity is whole and fits.
    public var integerValue: Int? {
        guard exponent >= 0 else { return nil }
        var v = mantissa
        for _ in 0..<exponent {
            let (m, o) = v.multipliedReportingOverflow(by: 10)
            if o { return nil }
            v = m
        }
        return v
    }

    public static func < (lhs: Quantity, rhs: Quantity) -> Bool {
        lhs.doubleValue < rhs.doubleValue
    }

    public static func == (lhs: Quantity, rhs: Quantity) -> Bool {
        lhs.mantissa == rhs.mantissa && lhs.exponent == rhs.exponent
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(mantissa)
        hasher.combine(exponent)
    }

    /// The canonical text, as the API server stores and returns it.
    public var description: String {
        if mantissa == 0 { return "0" }
        if format == .binarySI, abs(doubleValue) >= 1024, var value = integerValue {
            let suffixes = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
            var power = 0
            while power < 6, value % 1024 == 0 {
                value /= 1024
                power += 1
            }
            return "\(value)\(suffixes[power])"
        }
        // Decimal: exponent a multiple of 3 with an integer mantissa.
        var m = mantissa
        var e = exponent
        let extra = ((e % 3) + 3) % 3
        for _ in 0..<extra {
            let (scaled, overflow) = m.multipliedReportingOverflow(by: 10)
            // Too many digits to shift onto a multiple of 3: the exact value in exponent form.
            if overflow { return "\(mantissa)e\(exponent)" }
            m = scaled
        }
        e -= extra
        if format == .decimalExponent {
            return e == 0 ? "\(m)" : "\(m)e\(e)"
        }
        let suffixes: [Int: String] = [-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"]
        if let s = suffixes[e] { return "\(m)\(s)" }
        return "\(m)e\(e)"
    }
}
