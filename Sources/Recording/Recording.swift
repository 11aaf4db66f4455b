/// The procedure recorder (MCAP) and its replay: the control cycle hands each cycle's record to
/// a non-real-time thread, which writes it here.

/// The schema name and version under which cycle records are written, so that readers can
/// refuse a recording they do not understand.
public enum RecordingSchema {
    public static let cycleRecord = "lumen.CycleRecord"
    public static let version = 1
}
