import FuzzDriver
import FuzzOracles

// The package manager links an executable's entry point under this name (libFuzzer brings no
// main of its own here): FuzzOracle.requestHead is fuzzed.
@_cdecl("FuzzRequestHead_main")
public func fuzzRequestHeadMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    FuzzDriver.run(argc, argv, FuzzOracle.requestHead)
}
