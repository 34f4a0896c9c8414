import FuzzDriver
import FuzzOracles

// The package manager links an executable's entry point under this name (libFuzzer brings no
// main of its own here): FuzzOracle.identity is fuzzed.
@_cdecl("FuzzIdentity_main")
public func fuzzIdentityMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    FuzzDriver.run(argc, argv, FuzzOracle.identity)
}
