#if canImport(Glibc)
import Glibc
#endif
import XCTest
@testable import Supervisor

/// The child's side of the readiness protocol.
final class SupervisorChildTests: XCTestCase {
    func testReadsTheDescriptorFromTheVariable() {
        XCTAssertEqual(SupervisorChild.readyDescriptor("3"), 3)
        XCTAssertEqual(SupervisorChild.readyDescriptor("17"), 17)
        XCTAssertNil(SupervisorChild.readyDescriptor(nil))
        XCTAssertNil(SupervisorChild.readyDescriptor(""))
        XCTAssertNil(SupervisorChild.readyDescriptor("1"), "never standard output or error")
        XCTAssertNil(SupervisorChild.readyDescriptor("x"))
    }

    func testWritesOneByteAndCloses() {
        var pair: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        defer { close(pair[0]) }
        XCTAssertTrue(SupervisorChild.report(to: pair[1]))
        var buffer = [UInt8](repeating: 0, count: 4)
        XCTAssertEqual(read(pair[0], &buffer, 4), 1)
        XCTAssertEqual(buffer[0], UInt8(ascii: "R"))
        XCTAssertEqual(read(pair[0], &buffer, 4), 0, "closed after the byte")
        XCTAssertEqual(fcntl(pair[1], F_GETFD), -1)
    }

    func testSurvivesASupervisorThatIsGone() {
        var pair: [Int32] = [-1, -1]
        XCTAssertEqual(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair), 0)
        close(pair[0])
        XCTAssertFalse(SupervisorChild.report(to: pair[1])) // EPIPE, and no SIGPIPE
    }

    func testLeavesFilesAlone() {
        let fd = open("/dev/null", O_WRONLY)
        XCTAssertFalse(SupervisorChild.report(to: fd))
        XCTAssertNotEqual(fcntl(fd, F_GETFD), -1, "not closed")
        close(fd)
    }
}
