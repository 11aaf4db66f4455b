// libFuzzer target for the console's WebSocket message decoder: any bytes must decode to a
// command whose every number is finite and in its range, or to a typed error. No crash, no hang.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeBufferPointer(start: data, count: size)
    switch ConsoleMessage.decode(bytes) {
    case .failure(let e):
        _ = e.description
    case .success(let c):
        precondition(size <= ConsoleMessage.maxLength)
        switch c {
        case .jointJog(let v):
            precondition((1...ConsoleMessage.maxJoints).contains(v.count) && v.allSatisfy { $0.isFinite && abs($0) <= 1 })
        case .tipJog(let x, let y, let z, _):
            precondition([x, y, z].allSatisfy { $0.isFinite && abs($0) <= ConsoleMessage.maxHandMillimetres })
        case .targetPixel(let p, let x, let y):
            precondition(p < 8 && x.isFinite && y.isFinite && x >= 0 && y >= 0 && x <= ConsoleMessage.maxPixel && y <= ConsoleMessage.maxPixel)
        case .scale(let s):
            precondition(ConsoleMessage.scaleRange.contains(s))
        case .namedTarget(let n):
            precondition(n.utf8.count <= ConsoleMessage.maxNameLength)
        case .shown(let p, _):
            precondition(p < 8)
        default:
            break
        }
    }
    return 0
}
