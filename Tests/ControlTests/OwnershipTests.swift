import Core
import Testing
@testable import Control

/// Who keeps the cycle's buffers alive. The noncopyable owners (`TipEstimator`, `PathServo`,
/// `CenterlineRoute`, `ImageGuidedController`) are proved by the compiler: a copy, or a use after
/// the owner was consumed, does not build. What is checked here is the shared owners: a view the
/// cycle writes or reads through holds its owner, so the memory outlives every view.
@Suite("Ownership of the cycle's buffers")
struct OwnershipTests {
    @Test("A mailbox lives as long as either of its ends, and no longer")
    func theMailboxEndsKeepItAlive() {
        weak var watched: MeasurementMailbox?
        var receiver: MeasurementReceiver
        do {
            let mailbox = MeasurementMailbox(capacity: 4)
            watched = mailbox
            let sender = mailbox.sender
            let posted = sender.send(TipMeasurement(acquiredAt: 7))
            #expect(posted)
            receiver = mailbox.receiver
        }
        // Only the receiver holds the mailbox now: its ring must still be there.
        #expect(watched != nil)
        #expect(receiver.receive()?.acquiredAt == 7)
        #expect(receiver.receive() == nil)
        _ = consume receiver
        #expect(watched == nil, "the mailbox outlived its last end")
    }

    @Test("Two estimators keep their own histories")
    func estimatorsNeverShareAHistory() throws {
        let model = CatheterModel(try loadRobot("lumen-1s.yaml"))
        var first = TipEstimator(model: model, planes: [], historyLength: 64)
        let q = JointVector([40, 0, 0, 0])
        _ = first.predict(joints: q, time: 1_000_000)
        let tip = first.estimate(now: 1_000_000).position
        // A second estimator starting elsewhere must not write the first one's ring.
        var second = TipEstimator(model: model, planes: [], historyLength: 64)
        _ = second.predict(joints: JointVector([10, 0.5, 0, 0]), time: 5_000_000)
        #expect(first.estimate(now: 1_000_000).position == tip)
        #expect(first.newest == second.newest)
        #expect(first.times[first.newest] == 1_000_000)
    }
}
