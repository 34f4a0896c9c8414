import FuzzOracles

// A libFuzzer target (built by scripts/fuzz): the bytes go to FuzzOracle.identity, and a property
// that does not hold is a crash the fuzzer keeps.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzIdentity(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let problem = FuzzOracle.identity(Array(UnsafeBufferPointer(start: data, count: size))) {
        fatalError(problem)
    }
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzer(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
               _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

// The package manager links an executable's entry point under this name; it hands over to
// libFuzzer's driver.
@_cdecl("FuzzIdentity_main")
public func fuzzIdentityMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> CInt {
    var argc = argc
    var argv = argv
    return runFuzzer(&argc, &argv, fuzzIdentity)
}
