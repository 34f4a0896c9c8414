/// The libFuzzer side of the fuzz targets (built only by scripts/fuzz, with -sanitize=fuzzer):
/// each target's entry point hands its property to `FuzzDriver.run`, and a property that does not
/// hold is a crash the fuzzer keeps.
public enum FuzzDriver {
    nonisolated(unsafe) static var property: (([UInt8]) -> String?)?

    public static func run(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>,
                           _ property: @escaping ([UInt8]) -> String?) -> CInt {
        FuzzDriver.property = property
        var argc = argc
        var argv = argv
        return runFuzzer(&argc, &argv, fuzzOneInput)
    }
}

@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzer(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
               _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt) -> CInt

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    if let problem = FuzzDriver.property?(Array(UnsafeBufferPointer(start: data, count: size))) {
        fatalError(problem)
    }
    return 0
}
