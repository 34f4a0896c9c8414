/// The value at `place`, moved out, with `empty` left in its stead. A record taken out of an
/// array this way is not copied: a copy retains each of its strings, and freeing the array
/// releases them all again (docs/performance.md).
@inlinable
public func moveOut<Value>(of place: inout Value, leaving empty: Value) -> Value {
    var taken = empty
    swap(&taken, &place)
    return taken
}
