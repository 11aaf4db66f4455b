// libFuzzer target for the host's DriveLink decoder: stream assembly, COBS, CRC, header checks.
// Any input must come back as frames or typed errors: no crash, no hang, no unbounded memory.

let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: DriveLink.maxFrame + 16, alignment: 8)
nonisolated(unsafe) var assembler = FrameAssembler()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    // As one frame (delimiter excluded), as the decoder sees it …
    switch DriveLink.decode(bytes, scratch: scratch) {
    case .success(let f):
        precondition(f.payloadCount <= DriveLink.maxPayload && f.payloadOffset == DriveLink.headerSize)
    case .failure:
        break
    }
    // … and as a stream, through the assembler.
    for b in bytes {
        if let frame = assembler.push(b) {
            precondition(frame.count <= DriveLink.maxWireFrame)
            _ = DriveLink.decode(frame, scratch: scratch)
        }
    }
    return 0
}
