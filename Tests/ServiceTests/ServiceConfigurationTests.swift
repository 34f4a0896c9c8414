import LeadCore
import Service
import XCTest

/// What `serve` derives from its settings.
final class ServiceConfigurationTests: XCTestCase {
    func testTheLockTimeoutIsAQuarterOfTheWaitLimitWithinBounds() {
        var configuration = ServiceConfiguration(cores: 4)
        for (wait, lock) in [(Duration.seconds(2), Duration.milliseconds(500)), (.milliseconds(200), .milliseconds(100)),
                             (.seconds(60), .seconds(1)), (.milliseconds(800), .milliseconds(200))] {
            configuration.waitLimit = wait
            XCTAssertEqual(configuration.lockTimeout, lock, "wait limit \(wait)")
            XCTAssertEqual(configuration.pool.connection.lockTimeout, lock)
            XCTAssertEqual(configuration.pool.waitLimit, wait)
        }
    }

    func testThePoolAndTheImporterTakeTheirSettingsFromIt() {
        var configuration = ServiceConfiguration(cores: 8)
        configuration.poolSize = 5
        configuration.pageSize = 250
        configuration.batchSize = 125
        configuration.statementTimeout = .seconds(7)
        XCTAssertEqual(configuration.pool.size, 5)
        XCTAssertEqual(configuration.pool.connection.statementTimeout, .seconds(7))
        XCTAssertEqual(configuration.bodyLimit, ImportRequest.bodyLimit)
        XCTAssertEqual(ServiceConfiguration(cores: 8).workers, ServiceLimits.defaultWorkers(cores: 8))
        XCTAssertEqual(ServiceConfiguration(cores: 8).poolSize, ServiceLimits.defaultPoolSize(cores: 8))
    }
}
