import Core
import Foundation
import Testing
@testable import Imaging

/// The ridge filter keeps its working planes from frame to frame on each thread (fresh ones cost
/// a tenth of an acquisition in page faults). Nothing may carry over: a frame gives the same
/// chains, blobs and response whatever was filtered before it, and whichever thread runs it.
@Suite struct RidgeFilterStateTests {
    struct Answer: Equatable {
        var chains: [[RidgePoint]]
        var blobs: [RidgeBlob]
        var response: [Float]
    }

    static func answer(_ frame: Frame, region: PixelRegion? = nil, downsample: Int) throws -> Answer {
        let ridges = try RidgeExtractor()
        let (chains, blobs) = try ridges.features(in: frame, region: region, downsample: downsample)
        return Answer(chains: chains, blobs: blobs, response: try ridges.responseMap(of: frame, region: region, downsample: downsample))
    }

    /// The answer for `frame` on a thread that has filtered nothing before.
    static func onAFreshThread(_ frame: Frame, downsample: Int) throws -> Answer {
        final class Box: @unchecked Sendable { var result: Result<Answer, Error>? }
        let box = Box(), done = DispatchSemaphore(value: 0)
        let thread = Thread {
            box.result = Result { try answer(frame, downsample: downsample) }
            done.signal()
        }
        thread.stackSize = 8 << 20
        thread.start()
        done.wait()
        return try box.result!.get()
    }

    @Test(arguments: [1, 2])
    func aFrameGivesTheSameAnswerWhateverWasFilteredBefore(downsample: Int) throws {
        let frame = BezierScene(size: 256, seed: 21).frame()
        let fresh = try Self.onAFreshThread(frame, downsample: downsample)
        let found = fresh.chains.count
        #expect(found > 0)
        // Other sizes, an odd one, a region, with and without blobs, both downsamples: every
        // kept plane is resized or refilled in between.
        let other = BezierScene(size: 201, width: 6, density: 0.6, photons: 800, seed: 22).frame()
        _ = try Self.answer(other, downsample: 2)
        _ = try Self.answer(other, downsample: 1)
        _ = try RidgeExtractor().chains(in: frame, region: PixelRegion(x: 40, y: 60, width: 97, height: 83), downsample: 1)
        let again = try Self.answer(frame, downsample: downsample)
        let twice = try Self.answer(frame, downsample: downsample)
        let sameAfterOthers = again == fresh, sameTwice = twice == fresh
        #expect(sameAfterOthers, "the answer changed with what was filtered before it")
        #expect(sameTwice, "the answer changed from one call to the next")
    }
}
