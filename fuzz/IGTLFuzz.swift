// libFuzzer target for the OpenIGTLink decoder: any bytes from a client must come back as a message
// or a typed error. No crash, no hang, no unbounded memory. The fuzzer rarely guesses a CRC-64, so
// each input is also decoded with the CRC it declares replaced by the body's own: the content
// decoders behind the checksum are reached too.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let input = UnsafeRawBufferPointer(start: data, count: size)
    _ = try? IGTLCodec.decode(input)
    guard size >= IGTLCodec.headerSize else { return 0 }
    var bytes = Array(input)
    // Declare the body size that is there, and its CRC.
    let body = UInt64(size - IGTLCodec.headerSize)
    for k in 0..<8 { bytes[42 + k] = UInt8(truncatingIfNeeded: body >> (56 - 8 * UInt64(k))) }
    let crc = bytes.withUnsafeBytes { IGTLCodec.crc64(UnsafeRawBufferPointer(rebasing: $0[IGTLCodec.headerSize...])) }
    for k in 0..<8 { bytes[50 + k] = UInt8(truncatingIfNeeded: crc >> (56 - 8 * UInt64(k))) }
    let decoded = bytes.withUnsafeBytes { b in Result { () throws(IGTLError) in try IGTLCodec.decode(b) } }
    if case .success(.point(_, let points)) = decoded { precondition(points.count * 136 <= size) }
    return 0
}
