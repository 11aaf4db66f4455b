// swift-tools-version: 6.1
import PackageDescription

// Header search paths of the Debian -dev packages the C++ bridges compile against.
let eigenInclude = "-I/usr/include/eigen3"
let openCVInclude = "-I/usr/include/opencv4"

let package = Package(
    name: "Lumen",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lumen", targets: ["lumen"]),
        // The safety monitor alone: Safety, Core and Drivers, none of the control stack.
        .executable(name: "lumen-safety", targets: ["lumen-safety"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // MARK: Native bridges — narrow extern "C" headers, no C++ type crosses into Swift.
        .systemLibrary(
            name: "CLibSerialPort",
            pkgConfig: "libserialport",
            providers: [.apt(["libserialport-dev"])]
        ),
        .target(
            name: "CEigen",
            cxxSettings: [.unsafeFlags([eigenInclude, "-O3", "-DNDEBUG"])]
        ),
        .target(
            name: "COpenCV",
            // Nothing here reads errno: without it to set, the pixel loops' square roots vectorise.
            // Optimised in debug builds too (as CEigen is): the tests' pixel loops then run as the
            // release build's do, and a debug build's live imaging keeps up better on a loaded machine.
            cxxSettings: [.unsafeFlags([openCVInclude, "-fno-math-errno", "-O3"])],
            linkerSettings: [
                .linkedLibrary("opencv_imgcodecs"),
                .linkedLibrary("opencv_imgproc"),
                .linkedLibrary("opencv_core"),
            ]
        ),
        // Audited system calls of the real-time path and the C reference loop of `bench loop`.
        .target(name: "CRealtime"),
        // The DriveLink device-side reference for firmware (portable C99), built here so the
        // Swift host is cross-tested against it; its own unit tests build with `make` in hil/firmware.
        .target(
            name: "CDriveLinkReference",
            path: "hil/firmware",
            exclude: ["test", "Makefile"],
            sources: ["src"],
            publicHeadersPath: "include",
            cSettings: [.unsafeFlags(["-std=c99"])]
        ),
        // Per-thread heap-allocation counter (malloc interposition) for the zero-allocation checks.
        .target(name: "CAllocCount"),

        // DICOM reading and writing through DCMTK's dcmdata, dcmjpeg and dcmjpls (Debian libdcmtk-dev).
        .target(
            name: "CDCMTK",
            linkerSettings: [
                .linkedLibrary("dcmdata"),
                // The decoders of the compressed syntaxes C-arms export: JPEG (IJG 8/12/16-bit) and JPEG-LS.
                .linkedLibrary("dcmjpeg"),
                .linkedLibrary("dcmjpls"),
                .linkedLibrary("dcmimgle"),
                .linkedLibrary("oflog"),
                .linkedLibrary("ofstd"),
                // Deflated files are inflated by the bridge itself, with a bound (zlib1g-dev).
                .linkedLibrary("z"),
            ]
        ),

        // MARK: Lumen modules
        .target(
            name: "Core",
            dependencies: ["CRealtime", .product(name: "Yams", package: "Yams")]
        ),
        .target(
            name: "Control",
            dependencies: [
                "Core", "CEigen", "CRealtime",
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ]
        ),
        .target(name: "Drivers", dependencies: ["Core", "CLibSerialPort", "CRealtime"]),
        .target(name: "Imaging", dependencies: ["Core", "COpenCV", "CDCMTK", "CEigen"]),
        .target(name: "Safety", dependencies: ["Core", "Drivers"]),
        .target(name: "Sim", dependencies: ["Core", "Drivers", "Imaging", "CDriveLinkReference", "CRealtime", "COpenCV"],
                resources: [.copy("Vessels/PhantomFiles")]),
        // Runs in simulated time: navigation runs (the guided loop through CycleRunner on a
        // simulated clock) and the safety monitor's fault campaign (the closed loop and the monitor).
        .target(name: "Scenarios", dependencies: ["Control", "Core", "Drivers", "Imaging", "Safety", "Sim", "COpenCV"]),
        // The live system: cycle thread, simulated patient, imaging threads, the monitor process,
        // and the operator port that the console, the recorder and the HIL runner attach to.
        .target(name: "Runtime", dependencies: ["Control", "Core", "Drivers", "Imaging", "Safety", "Scenarios", "Sim", "CAllocCount"]),
        .target(
            name: "Console",
            dependencies: [
                "Core", "Control", "Runtime", "COpenCV",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            resources: [.copy("Web")]
        ),
        // The recorder (MCAP), replay, the OpenIGTLink server and the Prometheus endpoint.
        .target(
            name: "Recording",
            dependencies: ["Core", "Control", "Runtime", "Imaging", "Scenarios", "Sim", "Safety", "COpenCV", .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        // What every command shares: JSON and progress output, checks of option values.
        .target(
            name: "CommandSupport",
            dependencies: ["Core", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        // The monitor's command (`lumen safety`, `lumen-safety`): it may link Safety, Core and
        // Drivers only, never Control, Imaging or Sim (IndependenceTests).
        .target(
            name: "MonitorCommand",
            dependencies: ["Safety", "Core", "CommandSupport", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "lumen-safety",
            dependencies: ["MonitorCommand", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "lumen",
            dependencies: [
                "Core", "Control", "Drivers", "Imaging", "Safety", "Scenarios", "Sim", "Runtime", "Console", "Recording",
                "CommandSupport", "MonitorCommand",
                "CAllocCount", "CEigen", "COpenCV", "CRealtime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),

        // MARK: Tests — one target per module
        .testTarget(name: "CoreTests", dependencies: ["Core"]),
        .testTarget(name: "ControlTests", dependencies: ["Control", "Core", "Sim", "Drivers", "CAllocCount", "CEigen"]),
        .testTarget(name: "DriversTests", dependencies: ["Drivers", "Core", "CDriveLinkReference"]),
        .testTarget(name: "ImagingTests", dependencies: ["Imaging", "Core"]),
        .testTarget(name: "SimTests", dependencies: ["Sim", "Core", "Drivers", "Imaging"]),
        .testTarget(name: "ScenariosTests", dependencies: ["Scenarios", "Control", "Core", "Imaging", "Safety", "Sim"]),
        .testTarget(name: "SafetyTests", dependencies: ["Safety", "Core", "Drivers", "Scenarios", "Control", "Sim", "CAllocCount"]),
        .testTarget(name: "ConsoleTests", dependencies: ["Console", "Runtime", "Control", "Core"]),
        // Runs the built `lumen` tool as a user would; depends on it so it is built first.
        .testTarget(name: "RecordingTests", dependencies: ["Recording", "Runtime", "Control", "Core", "Imaging", "lumen"]),
        .testTarget(name: "LumenCLITests", dependencies: ["lumen", "lumen-safety"]),
        // The live runtime; depends on lumen-safety so the monitor executable it starts is built.
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "Control", "Core", "Imaging", "Scenarios", "Sim", "CAllocCount", "lumen-safety"]),
    ],
    swiftLanguageModes: [.v6],
    cxxLanguageStandard: .cxx17
)
