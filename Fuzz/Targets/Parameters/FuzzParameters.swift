import FuzzDriver
import FuzzOracles

// The package manager links an executable's entry point under this name (libFuzzer brings no
// main of its own here): FuzzOracle.parameters is fuzzed.
@_cdecl("FuzzParameters_main")
public func fuzzParametersMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    FuzzDriver.run(argc, argv, FuzzOracle.parameters)
}
