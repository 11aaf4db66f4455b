import Core
import Foundation
import Prometheus
import Runtime
import Synchronization

/// The runtime's metrics in a Prometheus registry: cycle lateness and compute histograms (fed per
/// cycle by the recorder, which drains every cycle record), overruns, frames acquired, dropped and
/// tracked, fused measurements, safety state and link errors (from the port's snapshot).
public final class RuntimeMetrics: Sendable {
    public let registry = PrometheusCollectorRegistry()
    /// Seconds: 10 µs … 10 ms, around a 1 ms period.
    static let cycleBuckets = [10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2e-3, 5e-3, 10e-3]
    let lateness: ValueHistogram
    let compute: ValueHistogram
    let cycles: Counter
    let cycleRecordsLost: Gauge
    let fused: Counter
    let overruns: Gauge
    let latenessP99: Gauge
    let computeP99: Gauge
    let monitorAlive: Gauge
    let powerPermitted: Gauge
    let stopCategory: Gauge
    let latchedFaults: Gauge
    let deadmanHeld: Gauge
    let mode: Gauge
    let estimateHealth: Gauge
    let linkUp: Gauge
    private let linkErrors = Mutex<[String: Gauge]>([:])
    private let planeGauges = Mutex<[Int: (acquired: Gauge, dropped: Gauge, tracked: Counter, recorded: Counter)]>([:])
    private let lastImage = Atomic<Int64>(0)

    /// Names are written whole here (`lumen_…_seconds`), so the descriptor's parts stay empty.
    private static func d(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    public init() {
        func d(_ name: String, _ help: String) -> MetricNameDescriptor { Self.d(name, help) }
        lateness = registry.makeValueHistogram(descriptor: d("lumen_cycle_lateness_seconds", "How late each control cycle woke past its deadline."), buckets: Self.cycleBuckets)
        compute = registry.makeValueHistogram(descriptor: d("lumen_cycle_compute_seconds", "Compute time of each control cycle."), buckets: Self.cycleBuckets)
        cycles = registry.makeCounter(descriptor: d("lumen_cycles_recorded_total", "Cycle records seen by the recorder."))
        cycleRecordsLost = registry.makeGauge(descriptor: d("lumen_cycle_records_lost", "Cycle records overwritten before the recorder drained them."))
        fused = registry.makeCounter(descriptor: d("lumen_fused_measurements_total", "Image measurements the estimator fused."))
        overruns = registry.makeGauge(descriptor: d("lumen_cycle_overruns", "Control cycles that overran their period."))
        latenessP99 = registry.makeGauge(descriptor: d("lumen_cycle_lateness_p99_seconds", "The runtime's own lateness p99."))
        computeP99 = registry.makeGauge(descriptor: d("lumen_cycle_compute_p99_seconds", "The runtime's own compute p99."))
        monitorAlive = registry.makeGauge(descriptor: d("lumen_safety_monitor_alive", "1 while the safety monitor's verdicts arrive."))
        powerPermitted = registry.makeGauge(descriptor: d("lumen_safety_power_permitted", "1 while the monitor permits drive power."))
        stopCategory = registry.makeGauge(descriptor: d("lumen_safety_stop_category", "The active stop's category (0, 1, 2); -1 for none."))
        latchedFaults = registry.makeGauge(descriptor: d("lumen_safety_latched_faults", "Latched faults."))
        deadmanHeld = registry.makeGauge(descriptor: d("lumen_safety_deadman_held", "1 while the deadman is held."))
        mode = registry.makeGauge(descriptor: d("lumen_control_mode", "Control mode: 0 idle, 1 hold, 2 jog, 3 tip servo."))
        estimateHealth = registry.makeGauge(descriptor: d("lumen_estimate_health", "Tip estimate: 0 image fresh, 1 coasting, 2 lost."))
        linkUp = registry.makeGauge(descriptor: d("lumen_link_up", "1 while the drive link is up."))
    }

    /// Per cycle record, on the recorder's thread.
    public func observe(cycle r: borrowing CycleRecord) {
        lateness.record(Double(r.lateness) * 1e-9)
        compute.record(Double(r.compute) * 1e-9)
        cycles.increment()
        let fusedAt = r.estimate.lastImageAt
        if fusedAt != 0, lastImage.exchange(fusedAt, ordering: .relaxed) != fusedAt { fused.increment() }
    }

    public func observe(cycleRecordsLost lost: UInt64) { cycleRecordsLost.set(Double(lost)) }

    private func plane(_ p: Int) -> (acquired: Gauge, dropped: Gauge, tracked: Counter, recorded: Counter) {
        planeGauges.withLock { g in
            if let x = g[p] { return x }
            let labels = [("plane", "\(p)")]
            func d(_ name: String, _ help: String) -> MetricNameDescriptor { Self.d(name, help) }
            let x = (registry.makeGauge(descriptor: d("lumen_frames_acquired", "Frames acquired per plane."), labels: labels),
                     registry.makeGauge(descriptor: d("lumen_frames_dropped", "Frames lost because the imaging thread was busy."), labels: labels),
                     registry.makeCounter(descriptor: d("lumen_frames_tracked_total", "Recorded frames on which the tracker found the tip."), labels: labels),
                     registry.makeCounter(descriptor: d("lumen_frames_seen_total", "Frames the recorder drained."), labels: labels))
            g[p] = x
            return x
        }
    }

    /// Per frame, on the recorder's thread: the tracking rate is tracked / seen.
    public func observe(frame f: LiveFrame) {
        let g = plane(Int(f.plane))
        g.recorded.increment()
        if f.measurement?.pixel != nil { g.tracked.increment() }
    }

    /// The snapshot's state; called by the endpoint before each scrape and periodically.
    public func update(from s: RuntimeSnapshot) {
        overruns.set(Double(s.overruns))
        latenessP99.set(Double(s.latenessP99) * 1e-9)
        computeP99.set(Double(s.computeP99) * 1e-9)
        monitorAlive.set(s.safety.monitorAlive ? 1.0 : 0.0)
        powerPermitted.set(s.safety.powerPermitted ? 1.0 : 0.0)
        stopCategory.set(Double(s.safety.stopCategory ?? -1))
        latchedFaults.set(Double(s.safety.latchedFaults.count))
        deadmanHeld.set(s.safety.deadmanHeld ? 1.0 : 0.0)
        mode.set(Double(s.mode.rawValue))
        estimateHealth.set(Double(s.estimate.health.rawValue))
        linkUp.set(s.link.up ? 1.0 : 0.0)
        for (k, n) in s.link.errors {
            func d(_ name: String, _ help: String) -> MetricNameDescriptor { Self.d(name, help) }
            let g = linkErrors.withLock { m in
                if let g = m[k] { return g }
                let g = registry.makeGauge(descriptor: d("lumen_link_errors", "Drive link errors by kind."), labels: [("kind", k)])
                m[k] = g
                return g
            }
            g.set(Double(n))
        }
        for p in s.framesAcquired.indices {
            let g = plane(p)
            g.acquired.set(Double(s.framesAcquired[p]))
            if p < s.framesDropped.count { g.dropped.set(Double(s.framesDropped[p])) }
        }
    }

    /// The exposition text.
    public func exposition() -> String { registry.emitToString() }
}

public enum MetricsError: Error, Equatable, Sendable, CustomStringConvertible {
    case bind(port: UInt16, errno: Int32)
    public var description: String {
        switch self {
        case .bind(let p, let e): "cannot serve metrics on 127.0.0.1:\(p): \(String(cString: strerror(e))) (pick another port)"
        }
    }
}

/// `GET /metrics` over HTTP/1.1 on loopback (or a configured address): one small thread, one
/// request per connection, requests bounded to 8 KiB and 2 s.
public final class MetricsEndpoint: @unchecked Sendable {
    public let metrics: RuntimeMetrics
    private let port: (any OperatorPort)?
    private let listener: Int32
    public let boundPort: UInt16
    private let running = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let scrapes = Atomic<Int>(0)

    public init(port: (any OperatorPort)?, metrics: RuntimeMetrics = RuntimeMetrics(), bindAddress: String = "127.0.0.1",
                bindPort: UInt16 = 0) throws(MetricsError) {
        self.port = port
        self.metrics = metrics
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .bind(port: bindPort, errno: errno) }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = bindPort.bigEndian
        guard inet_pton(AF_INET, bindAddress, &addr.sin_addr) == 1 else { close(fd); throw .bind(port: bindPort, errno: EINVAL) }
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard rc == 0, listen(fd, 8) == 0 else { let e = errno; close(fd); throw .bind(port: bindPort, errno: e) }
        var bound = sockaddr_in()
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &bound) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        listener = fd
        boundPort = UInt16(bigEndian: bound.sin_port)
    }

    deinit { close(listener) }

    public var scrapeCount: Int { scrapes.load(ordering: .relaxed) }

    public func start() {
        running.store(true, ordering: .releasing)
        let t = Thread { [self] in serve() }
        t.name = "lumen-metrics"
        t.start()
    }

    public func stop() {
        guard running.exchange(false, ordering: .acquiringAndReleasing) else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        done.wait()
    }

    private func serve() {
        defer { done.signal() }
        while running.load(ordering: .acquiring) {
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else {
                if errno == EINTR { continue }
                return
            }
            handle(fd)
            close(fd)
        }
    }

    private func handle(_ fd: Int32) {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 2048)
        while request.count < 8192 {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            request.append(contentsOf: buffer[0..<n])
            if request.count >= 4, request.suffix(4).elementsEqual([13, 10, 13, 10]) { break }
            if request.contains(10), String(decoding: request, as: UTF8.self).contains("\r\n\r\n") { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self).split(separator: " ")
        let status: String, body: String, type: String
        if line.count >= 2, line[0] == "GET", line[1] == "/metrics" || line[1].hasPrefix("/metrics?") {
            if let port { metrics.update(from: port.snapshot()) }
            scrapes.add(1, ordering: .relaxed)
            (status, body, type) = ("200 OK", metrics.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        } else if line.count >= 2, line[0] != "GET" {
            (status, body, type) = ("405 Method Not Allowed", "only GET\n", "text/plain")
        } else {
            (status, body, type) = ("404 Not Found", "the metrics are at /metrics\n", "text/plain")
        }
        let payload = Array(body.utf8)
        let head = "HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(payload.count)\r\nConnection: close\r\n\r\n"
        let out = Array(head.utf8) + payload
        var sent = 0
        while sent < out.count {
            let n = out.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
    }
}
