import Foundation
import Service
import XCTest

/// The systemd unit's limits against what the service can run at most (ServiceLimits).
final class ServiceLimitsTests: XCTestCase {
    static let unit: String = {
        let path = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("systemd/leadimport.service").path
        return (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    }()

    static func setting(_ name: String) -> String? {
        unit.split(separator: "\n").last { $0.hasPrefix(name + "=") }.map { String($0.dropFirst(name.count + 1)) }
    }

    /// With its defaults, on any number of cores, the service stays under the unit's TasksMax,
    /// a reload's extra worker process included.
    func testTheDefaultsFitTasksMaxOnAnyHost() throws {
        let tasksMax = try XCTUnwrap(Self.setting("TasksMax").flatMap(Int.init), "the unit sets no numeric TasksMax")
        for cores in [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024] {
            let most = ServiceLimits.maximumThreads(processes: ServiceLimits.defaultProcesses,
                                                    workers: ServiceLimits.defaultWorkers(cores: cores),
                                                    poolSize: ServiceLimits.defaultPoolSize(cores: cores))
            XCTAssertLessThanOrEqual(most, tasksMax, "\(cores) cores: \(most) threads at most")
        }
    }

    /// No core files (a worker's memory holds tokens and the database password), and a memory
    /// ceiling for the whole service.
    func testTheUnitForbidsCoresAndBoundsMemory() throws {
        XCTAssertEqual(Self.setting("LimitCORE"), "0")
        let memoryMax = try XCTUnwrap(Self.setting("MemoryMax"), "the unit sets no MemoryMax")
        XCTAssertTrue(memoryMax.hasSuffix("M") || memoryMax.hasSuffix("G"), memoryMax)
    }
}
