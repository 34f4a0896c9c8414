import FuzzDriver
import FuzzOracles

// The package manager links an executable's entry point under this name (libFuzzer brings no
// main of its own here): FuzzOracle.json is fuzzed.
@_cdecl("FuzzJSON_main")
public func fuzzJSONMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    FuzzDriver.run(argc, argv, FuzzOracle.json)
}
