import Core
import Drivers
import Foundation
import Sim

/// The far end of an emulated link, as the runner sees it: it injects faults there and samples
/// what the drive itself does (its power stage, its watchdog). A real drive has none: the
/// scenarios that inject faults are skipped on it, and the rest judge the host's side alone.
public protocol HILDeviceSide: AnyObject {
    /// Why `fault` cannot be injected here (nil: it can).
    func refusal(_ fault: HILScenario.Fault) -> String?
    func inject(_ step: HILScenario.Step)
    /// Removes `fault` (nil: every injected fault).
    func clear(_ fault: HILScenario.Fault?)
    /// Whether the drive's power stage is on, and its watchdog trips so far (nil: not reported).
    func sample() -> (powered: Bool, watchdogTrips: Int?)
    /// Device-side counters, by the names expectations use.
    func counters() -> [String: Int]
    func stop()
    /// The errno with which the emulation's thread was refused SCHED_FIFO (0: granted or not asked).
    var realtimeRefusal: Int32 { get }
}

/// Emulated drives speaking DriveLink through the C reference on the far end of a pty.
public final class DriveLinkDeviceSide: HILDeviceSide {
    public let emulator: DriveLinkDriveEmulator
    private let emulatedDynamics: Bool
    private var impairment = LinkImpairment.none

    public init(emulator: DriveLinkDriveEmulator, emulatedDynamics: Bool) {
        self.emulator = emulator
        self.emulatedDynamics = emulatedDynamics
    }

    public func refusal(_ fault: HILScenario.Fault) -> String? {
        if fault.needsEmulatedDynamics, !emulatedDynamics { return "\(fault.rawValue) needs the emulated drive dynamics (setup.drives: emulated)" }
        return nil
    }

    public func inject(_ step: HILScenario.Step) {
        guard let fault = step.fault else { return }
        let axis = step.axis ?? 0
        switch fault {
        case .drop: impairment.dropRate = step.rate ?? 0
        case .corrupt:
            impairment.bitErrorRate = step.rate ?? 0
            // The storm is on the drive's replies: the commands still arrive, so the drive keeps
            // power and it is the host that must react to what it cannot read.
            impairment.corruptsFromHost = false
        case .duplicate: impairment.duplicateRate = step.rate ?? 0
        case .reorder: impairment.reorderRate = step.rate ?? 0
        case .delay: impairment.delay = Nanoseconds(((step.delay_ms ?? 0) * 1e6).rounded())
        case .dead_drive: emulator.kill(); return
        case .force: emulator.setForce(step.force_n ?? 0); return
        case .blocked_axis: emulator.inject(.jam, axis: axis); return
        case .encoder_freeze: emulator.inject(.encoderFreeze, axis: axis); return
        case .overcurrent:
            if emulatedDynamics {
                emulator.inject(.overcurrent, axis: axis)
            } else {
                // Ideal drives have no current to trip on: their protection latches it directly.
                emulator.injectFault(axis: UInt8(clamping: axis), code: 2, detail: 0, persistent: true)
            }
            return
        }
        emulator.setImpairment(impairment)
    }

    public func clear(_ fault: HILScenario.Fault?) {
        switch fault {
        case nil:
            impairment = .none
            emulator.setImpairment(impairment)
            for i in 0..<JointVector.capacity { emulator.inject([], axis: i) }
            emulator.clearFaultCause(code: 2)
            emulator.setForce(0)
        case .drop?: impairment.dropRate = 0
        case .corrupt?: impairment.bitErrorRate = 0
        case .duplicate?: impairment.duplicateRate = 0
        case .reorder?: impairment.reorderRate = 0
        case .delay?: impairment.delay = 0
        case .dead_drive?: return
        case .force?: emulator.setForce(0); return
        case .blocked_axis?, .encoder_freeze?, .overcurrent?:
            for i in 0..<JointVector.capacity { emulator.inject([], axis: i) }
            emulator.clearFaultCause(code: 2)
            return
        }
        emulator.setImpairment(impairment)
    }

    public func sample() -> (powered: Bool, watchdogTrips: Int?) {
        let r = emulator.report
        return (r.enabled, r.watchdogTrips)
    }

    public func counters() -> [String: Int] {
        let r = emulator.report
        return ["device_frames_accepted": r.framesAccepted, "device_frames_rejected": r.framesRejected,
                "device_frames_stale": r.framesStale, "device_watchdog_trips": r.watchdogTrips,
                "device_dropped_to_host": r.impairment.droppedToHost, "device_corrupted_to_host": r.impairment.corruptedToHost,
                "device_duplicated_to_host": r.impairment.duplicatedToHost, "device_reordered_to_host": r.impairment.reorderedToHost]
    }

    public func stop() { emulator.stop() }
    public var realtimeRefusal: Int32 { emulator.fifoRefusal }
}

/// Emulated CiA 402 slaves behind an EtherCAT segment on a loopback UDP port. The segment can
/// latch a drive fault and go silent; line impairments are DriveLink's emulator's alone.
public final class EtherCATDeviceSide: HILDeviceSide {
    public let segment: EtherCATSegment
    public let server: EtherCATUDPServer
    private let axes: Int

    public init(segment: EtherCATSegment, server: EtherCATUDPServer, axes: Int) {
        self.segment = segment
        self.server = server
        self.axes = axes
    }

    public func refusal(_ fault: HILScenario.Fault) -> String? {
        switch fault {
        case .overcurrent, .dead_drive: nil
        default: "\(fault.rawValue) is not emulated on EtherCAT (the DriveLink emulator has it: --link serial)"
        }
    }

    public func inject(_ step: HILScenario.Step) {
        switch step.fault {
        case .overcurrent?: segment.injectDriveFault(slave: step.axis ?? 0)
        case .dead_drive?: server.stop()
        default: break
        }
    }

    public func clear(_ fault: HILScenario.Fault?) {}

    public func sample() -> (powered: Bool, watchdogTrips: Int?) {
        // A slave whose sync-manager watchdog tripped reports AL status code 0x001B.
        let tripped = (0..<axes).filter { segment.alStatus($0).code == EtherCATSegment.StatusCode.syncManagerWatchdog }.count
        return ((0..<axes).contains(where: { segment.drive($0).state == .operationEnabled }), tripped)
    }

    public func counters() -> [String: Int] { [:] }
    public func stop() { server.stop() }
    public var realtimeRefusal: Int32 { server.fifoRefusal }
}
