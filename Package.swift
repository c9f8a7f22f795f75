// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "cairn",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "cairn", targets: ["cairn"]),
        .library(name: "ClusterSpecs", targets: ["ClusterSpecs"]),
        .library(name: "Render", targets: ["Render"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
    ],
    targets: [
        // Spec files: strict YAML composition with locations, the four spec formats, validation.
        // Yams is used for its bundled libyaml (CYaml): events carry line and column, and an
        // event-level composer can refuse aliases and deep nesting before anything expands.
        .target(
            name: "ClusterSpecs",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // Pure renderers: spec -> ordered Kubernetes objects, config serialisers, config hash.
        .target(
            name: "Render",
            dependencies: ["ClusterSpecs", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "cairn",
            dependencies: [
                "ClusterSpecs", "Render",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // Benchmark driver (prints figures; never a timed test).
        .executableTarget(
            name: "cairn-bench",
            dependencies: ["ClusterSpecs", "Render"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CairnTests",
            dependencies: ["ClusterSpecs", "Render", "cairn"],
            exclude: ["Golden", "Fixtures"],
            swiftSettings: strict
        ),
    ]
)
