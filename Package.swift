// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "cairn",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "cairn", targets: ["cairn"]),
        .library(name: "ClusterSpecs", targets: ["ClusterSpecs"]),
        .library(name: "Render", targets: ["Render"]),
        .library(name: "GitStore", targets: ["GitStore"]),
        .library(name: "KubeAPI", targets: ["KubeAPI"]),
        .library(name: "Reconcile", targets: ["Reconcile"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.100.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // JSON values with ordered keys, and their strict, linear parser; JSON kept deflated.
        .target(name: "JSON", dependencies: ["CZlib"], swiftSettings: strict),
        // zlib from Debian's zlib1g-dev (libgit2-dev depends on it), wrapped as a system library.
        .systemLibrary(
            name: "CZlib",
            pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"])]
        ),
        // glibc's <link.h> (dl_iterate_phdr: the build ids RenderCache is keyed by).
        .systemLibrary(name: "CLink"),
        // The YAML reader of spec files (and the pre-check of kubeconfigs): strict composition
        // with locations. Yams is used for its bundled libyaml (CYaml): events carry line and
        // column, and an event-level composer can refuse aliases and deep nesting before
        // anything expands.
        .target(
            name: "SpecYAML",
            dependencies: [.product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        // What every spec shares: field reading with locations, metadata, quantities, limits,
        // the loader (the systems themselves are in Render/Systems).
        .target(
            name: "ClusterSpecs",
            dependencies: ["JSON", "SpecYAML"],
            swiftSettings: strict
        ),
        // Pure renderers: spec -> ordered Kubernetes objects, config serialisers, config hash.
        .target(
            name: "Render",
            dependencies: ["ClusterSpecs", "DNSProxy", "CLink", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // libgit2 from Debian's libgit2-dev, wrapped as a system library.
        .systemLibrary(
            name: "CLibGit2",
            pkgConfig: "libgit2",
            providers: [.apt(["libgit2-dev"])]
        ),
        // The only code that touches libgit2: bare mirrors, remote heads, trees, diffs, commit + push.
        .target(
            name: "GitStore",
            dependencies: ["CLibGit2", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // The Kubernetes REST API: kubeconfig and in-cluster config, discovery, GET/LIST,
        // server-side apply, DELETE, typed errors, retries.
        .target(
            name: "KubeAPI",
            dependencies: [
                "JSON", "SpecYAML",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strict
        ),
        // KurrentDB SplitDNS's in-pod resolver (`cairn dns-proxy`): POSIX sockets, no dependency.
        .target(name: "DNSProxy", swiftSettings: strict),
        // Plan (desired vs live); the reconcile engine grows here.
        .target(
            name: "Reconcile",
            dependencies: ["ClusterSpecs", "Render", "KubeAPI"],
            swiftSettings: strict
        ),
        // `cairn run`: the poll/reconcile/status loop, metrics, health endpoints.
        .target(
            name: "Daemon",
            dependencies: [
                "ClusterSpecs", "Render", "GitStore", "KubeAPI", "Reconcile", "JSON",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "cairn",
            dependencies: [
                "ClusterSpecs", "Render", "GitStore", "KubeAPI", "Reconcile", "Daemon", "DNSProxy",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // Benchmark driver (prints figures; never a timed test).
        .executableTarget(
            name: "cairn-bench",
            dependencies: ["ClusterSpecs", "Render", "GitStore", "KubeAPI"],
            swiftSettings: strict
        ),
        // libFuzzer targets (Tests/fuzz.sh builds them with -sanitize=fuzzer -D FUZZING).
        .executableTarget(
            name: "cairn-fuzz",
            dependencies: ["ClusterSpecs", "Render", "KubeAPI", "DNSProxy"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "CairnTests",
            dependencies: ["ClusterSpecs", "Render", "GitStore", "KubeAPI", "Reconcile", "Daemon", "DNSProxy", "cairn"],
            exclude: ["Golden", "CRDFields"],
            swiftSettings: strict
        ),
    ]
)
