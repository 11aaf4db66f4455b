import Foundation

extension RegularFile {
    /// The bytes of the regular file at `path`, at most `maxBytes` of them (see `open` and `read`).
    public static func contents(atPath path: String, maxBytes: Int) throws(RegularFileError) -> Data {
        Data(try read(atPath: path, maxBytes: maxBytes))
    }
}
