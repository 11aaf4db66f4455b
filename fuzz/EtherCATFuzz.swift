// libFuzzer target for the EtherCAT frame decoder: any bytes must come back as datagrams that
// lie inside the frame, or as a typed error. No crash, no hang, no unbounded memory.

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let frame = UnsafeRawBufferPointer(start: data, count: size)
    var count = 0
    _ = EtherCAT.forEachDatagram(in: frame) { d in
        precondition(d.dataOffset >= 12 && d.wkcOffset + 2 <= frame.count && d.dataOffset + d.dataCount == d.wkcOffset)
        _ = EtherCAT.workingCounter(d, in: frame)
        count += 1
    }
    precondition(count <= size / 12 + 1)
    return 0
}
