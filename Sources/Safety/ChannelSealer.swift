import Core

/// The sender side of one role: seals each datagram with the key and a counter that only ever
/// grows. The counter is `CLOCK_MONOTONIC` ns (or one more than the last, if the clock has not
/// moved), so it keeps growing across a restart of the sender and the monitor needs no state
/// from the sender's previous life to refuse a replay.
public struct ChannelSealer: Sendable {
    public let key: ChannelKey
    public private(set) var counter: UInt64 = 0

    public init(key: ChannelKey) { self.key = key }

    /// The next counter value.
    @_noAllocation @_noLocks
    public mutating func next() -> UInt64 {
        let now = MonotonicClock.now()
        let clock = now > 0 ? UInt64(now) : 0
        counter = clock > counter ? clock : counter &+ 1
        return counter
    }
}
