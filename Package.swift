// swift-tools-version:6.0
import PackageDescription

// Layout, from the pure centre outwards:
//   LeadCore       decides, no I/O: UUID pattern, identities, where a row becomes a lead, request
//                  checks, the target verdict, what a database failure means, counts -> status
//   Platform       threads, locks, the monotonic clock, the log line (no C library beyond libc;
//                  CMalloc is glibc's <malloc.h>)
//   HTTP           the request and response a handler sees: no socket, no libfcgi
//   Postgres       the libpq driver: connection, transactions, prepared statements, results, the pool
//   Store          where the SQL lives: every statement of the service and the migrations
//   Importer       the import: its loop, page feeds and batches, behind ListImport
//   Service        where a request becomes a response: routes, the import endpoint, the configuration
//   FastCGIServer  libfcgi: one process's dispatcher (a pure DispatcherState and its epoll shell),
//                  its workers, the request head checks
//   Supervisor     where processes are supervised: the supervisor, its state, the launcher,
//                  signals, the listening socket
//   leadimport     the commands, which put the pieces together
let package = Package(
    name: "leadimport",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "leadimport", targets: ["leadimport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CFastCGI",
            providers: [.apt(["libfcgi-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(name: "CMalloc"),
        // Atomic words in memory shared by the worker processes, memfd_create, accept-queue lengths.
        .systemLibrary(name: "CSharedMemory"),
        // Platform for MonotonicInstant only: the job lease decides on instants it is given.
        .target(name: "LeadCore", dependencies: ["Platform"]),
        .target(name: "Platform", dependencies: [.target(name: "CMalloc", condition: .when(platforms: [.linux]))]),
        .target(name: "Postgres", dependencies: ["CLibPQ", "Platform"]),
        .target(name: "HTTP", dependencies: ["Platform"]),
        .target(name: "FastCGIServer", dependencies: ["CFastCGI", "HTTP", "Platform"]),
        .target(name: "Metrics", dependencies: ["CSharedMemory", "Platform"]),
        .target(name: "Supervisor", dependencies: ["Metrics", "Platform"]),
        .target(name: "Store", dependencies: ["LeadCore", "Postgres", "Platform"]),
        .target(name: "Importer", dependencies: ["LeadCore", "Store", "Postgres", "Platform"]),
        .target(name: "Service", dependencies: ["LeadCore", "HTTP", "Store", "Postgres", "Importer", "Metrics", "Platform"],
                resources: [.embedInCode("openapi.json")]),
        .executableTarget(
            name: "leadimport",
            dependencies: [
                "Service", "Importer", "Store", "Postgres", "FastCGIServer", "Supervisor", "Metrics", "HTTP", "Platform", "LeadCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "LeadCoreTests", dependencies: ["LeadCore", "TestSupport"]),
        .testTarget(name: "PlatformTests", dependencies: ["Platform"]),
        .testTarget(name: "MetricsTests", dependencies: ["Metrics", "Platform"]),
        .testTarget(name: "PostgresTests", dependencies: ["Postgres", "Store", "Platform", "TestSupport", "LeadCore"]),
        .testTarget(name: "FastCGIServerTests", dependencies: ["FastCGIServer", "HTTP", "Platform", "TestSupport"]),
        .testTarget(name: "SupervisorTests", dependencies: ["Supervisor", "Platform", "TestSupport"]),
        .testTarget(name: "ServiceTests", dependencies: ["Service", "HTTP", "LeadCore"]),
        .testTarget(name: "ImporterTests", dependencies: ["Importer", "Store", "Postgres", "LeadCore", "Platform", "TestSupport"]),
        .testTarget(name: "ContractTests", dependencies: ["Service", "HTTP", "Postgres", "TestSupport"]),
        .target(name: "TestSupport", dependencies: ["Postgres", "Platform"], path: "Tests/TestSupport"),
        // The fuzzers' properties, shared by the fuzz targets and the regression tests.
        .target(name: "FuzzOracles", dependencies: ["LeadCore", "FastCGIServer", "HTTP"], path: "Fuzz/Oracles"),
        .testTarget(name: "FuzzRegressionTests", dependencies: ["FuzzOracles"]),
        .testTarget(name: "EndToEndTests", dependencies: ["TestSupport", "Postgres", "LeadCore", "Service", "Store"]),
    ]
)

// Release builds compile every module with cross-module optimization, so that the importer
// specializes LeadCore's generic selection (MemberSelection, TopSelection) for the members it
// reads instead of calling it through generic metadata for each member (docs/performance.md).
for target in package.targets where target.type == .regular || target.type == .executable {
    target.swiftSettings = (target.swiftSettings ?? []) + [.unsafeFlags(["-cross-module-optimization"], .when(configuration: .release))]
}

// The libFuzzer targets exist only for scripts/fuzz (LEADIMPORT_FUZZ=1): they have no main of
// their own, libFuzzer's comes with -sanitize=fuzzer, so an ordinary build could not link them.
if Context.environment["LEADIMPORT_FUZZ"] != nil {
    package.targets.append(.target(name: "FuzzDriver", path: "Fuzz/Driver"))
    for name in ["RequestHead", "Parameters", "JSON", "Identity"] {
        package.targets.append(.executableTarget(
            name: "Fuzz" + name, dependencies: ["FuzzDriver", "FuzzOracles"], path: "Fuzz/Targets/" + name,
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        ))
    }
}
