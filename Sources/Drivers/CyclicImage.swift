import Core

/// The cyclic process data exchanged with the drives every cycle, as bytes: the drives'
/// state (encoder counts, velocities, currents, status) and the host's command (targets in
/// counts). Little-endian throughout. DriveLink's cyclic messages and EtherCAT's process-data
/// image carry these layouts; the in-process simulated robot exchanges them too, so every
/// robot costs the cycle the same decode and encode.
///
/// State image (8 + 12·n bytes):
///
/// | offset      | type | field                                  |
/// |-------------|------|----------------------------------------|
/// | 0           | u64  | sample time, ns (drive clock)          |
/// | 8 + 12·i    | i32  | axis i position, counts                |
/// | 12 + 12·i   | i32  | axis i velocity, counts/s              |
/// | 16 + 12·i   | i16  | axis i current, mA                     |
/// | 18 + 12·i   | u16  | axis i status bits (`DriveStatus`)     |
///
/// Command image (4 + 8·n bytes):
///
/// | offset      | type | field                                   |
/// |-------------|------|-----------------------------------------|
/// | 0           | u8   | mode (`JointCommand.Mode`)              |
/// | 1           | u8   | enable (0 or 1)                         |
/// | 2           | u16  | reserved, 0                             |
/// | 4 + 8·i     | i32  | axis i target position, counts          |
/// | 8 + 8·i     | i32  | axis i target velocity, counts/s        |
public enum CyclicImage {
    @_noAllocation @_noLocks
    @inlinable public static func stateSize(axes n: Int) -> Int { 8 + 12 * n }
    @_noAllocation @_noLocks
    @inlinable public static func commandSize(axes n: Int) -> Int { 4 + 8 * n }

    /// Why an image could not be decoded.
    public enum DecodeError: Error, Equatable, Sendable {
        case tooShort(needed: Int, got: Int)
        case badMode(UInt8)
        case badEnable(UInt8)
    }

    // MARK: State

    /// Encodes raw drive values (device side).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks @inlinable public static func encodeState(
        sampledAt: Nanoseconds, positions: UnsafePointer<Int32>, velocities: UnsafePointer<Int32>,
        currentsMilliamp: UnsafePointer<Int16>, status: UnsafePointer<UInt16>, axes n: Int,
        into buffer: UnsafeMutableRawBufferPointer
    ) -> Bool {
        guard buffer.count >= stateSize(axes: n) else { return false }
        buffer.storeBytes(of: UInt64(bitPattern: sampledAt).littleEndian, toByteOffset: 0, as: UInt64.self)
        for i in 0..<n {
            let o = 8 + 12 * i
            buffer.storeBytes(of: positions[i].littleEndian, toByteOffset: o, as: Int32.self)
            buffer.storeBytes(of: velocities[i].littleEndian, toByteOffset: o + 4, as: Int32.self)
            buffer.storeBytes(of: currentsMilliamp[i].littleEndian, toByteOffset: o + 8, as: Int16.self)
            buffer.storeBytes(of: status[i].littleEndian, toByteOffset: o + 10, as: UInt16.self)
        }
        return true
    }

    /// Decodes a state image into joint units (host side): counts / countsPerUnit.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks @inlinable public static func decodeState(
        _ buffer: UnsafeRawBufferPointer, countsPerUnit: JointVector, into state: inout JointState
    ) -> DecodeError? {
        let n = state.position.count
        guard buffer.count >= stateSize(axes: n) else { return .tooShort(needed: stateSize(axes: n), got: buffer.count) }
        state.sampledAt = Nanoseconds(bitPattern: UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: 0, as: UInt64.self)))
        var status: UInt16 = 0
        for i in 0..<n {
            let o = 8 + 12 * i
            let scale = 1 / countsPerUnit[i]
            state.position[i] = Double(Int32(littleEndian: buffer.loadUnaligned(fromByteOffset: o, as: Int32.self))) * scale
            state.velocity[i] = Double(Int32(littleEndian: buffer.loadUnaligned(fromByteOffset: o + 4, as: Int32.self))) * scale
            state.current[i] = Double(Int16(littleEndian: buffer.loadUnaligned(fromByteOffset: o + 8, as: Int16.self))) * 1e-3
            status |= UInt16(littleEndian: buffer.loadUnaligned(fromByteOffset: o + 10, as: UInt16.self))
        }
        state.status = DriveStatus(rawValue: status)
        return nil
    }

    // MARK: Command

    /// Encodes a joint command into counts (host side). Values beyond ±2³¹ counts saturate.
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks @inlinable public static func encodeCommand(
        _ command: JointCommand, countsPerUnit: JointVector, into buffer: UnsafeMutableRawBufferPointer
    ) -> Bool {
        let n = command.position.count
        guard buffer.count >= commandSize(axes: n) else { return false }
        buffer.storeBytes(of: command.mode.rawValue, toByteOffset: 0, as: UInt8.self)
        buffer.storeBytes(of: command.enable ? 1 : 0, toByteOffset: 1, as: UInt8.self)
        buffer.storeBytes(of: 0, toByteOffset: 2, as: UInt16.self)
        for i in 0..<n {
            let o = 4 + 8 * i
            let p = Int32(roundingSaturating: command.position[i] * countsPerUnit[i])
            let v = Int32(roundingSaturating: command.velocity[i] * countsPerUnit[i])
            buffer.storeBytes(of: p.littleEndian, toByteOffset: o, as: Int32.self)
            buffer.storeBytes(of: v.littleEndian, toByteOffset: o + 4, as: Int32.self)
        }
        return true
    }

    /// Decodes a command image into raw counts (device side).
    /// - Important: runs in the control cycle; must not allocate, lock or log.
    @_noAllocation @_noLocks @inlinable public static func decodeCommand(
        _ buffer: UnsafeRawBufferPointer, axes n: Int,
        positions: UnsafeMutablePointer<Int32>, velocities: UnsafeMutablePointer<Int32>,
        mode: inout JointCommand.Mode, enable: inout Bool
    ) -> DecodeError? {
        guard buffer.count >= commandSize(axes: n) else { return .tooShort(needed: commandSize(axes: n), got: buffer.count) }
        let rawMode = buffer.load(fromByteOffset: 0, as: UInt8.self)
        guard let m = JointCommand.Mode(rawValue: rawMode) else { return .badMode(rawMode) }
        let rawEnable = buffer.load(fromByteOffset: 1, as: UInt8.self)
        guard rawEnable <= 1 else { return .badEnable(rawEnable) }
        mode = m
        enable = rawEnable == 1
        for i in 0..<n {
            let o = 4 + 8 * i
            positions[i] = Int32(littleEndian: buffer.loadUnaligned(fromByteOffset: o, as: Int32.self))
            velocities[i] = Int32(littleEndian: buffer.loadUnaligned(fromByteOffset: o + 4, as: Int32.self))
        }
        return nil
    }
}

