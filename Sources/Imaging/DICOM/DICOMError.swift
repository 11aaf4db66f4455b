import CDCMTK

/// Why a DICOM file could not be read or written. Every case names the file.
public enum DICOMError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The file could not be opened or read (missing, a directory, no permission).
    case unreadable(file: String, reason: String)
    /// Not DICOM at all: no DICM prefix and nothing that parses as a data set.
    case notDICOM(file: String, reason: String)
    /// The data end before an element or the pixel data do.
    case truncated(file: String, reason: String)
    /// A malformed element, length, sequence or value.
    case corrupt(file: String, reason: String)
    /// A transfer syntax no codec here decodes (JPEG 2000, MPEG, HEVC…) or an unknown one:
    /// `name` is its name, `uid` its UID.
    case unsupportedTransferSyntax(file: String, uid: String, name: String)
    /// A compressed frame its codec could not decode (a corrupt or truncated stream).
    case undecodable(file: String, reason: String)
    /// Colour, palette or several samples per pixel: only MONOCHROME1/2 are read.
    case unsupportedPhotometric(file: String, reason: String)
    /// Bits allocated/stored/high bit outside what is read (8 or 16 allocated).
    case unsupportedBits(file: String, reason: String)
    /// A required attribute is absent (rows, columns, bits allocated, pixel data).
    case missingAttribute(file: String, reason: String)
    /// DCMTK's data dictionary could not be found: an installation problem, not the file's.
    case noDictionary(file: String, reason: String)
    /// The writer could not write the file, or was given frames it cannot write.
    case unwritable(file: String, reason: String)
    /// A directory, FIFO, device or socket: refused without reading (a FIFO would block forever).
    case notRegularFile(file: String, kind: String)
    /// The header (or, for a Deflated file, the data inflated so far) asks for more than
    /// `ImageLimits` allows: `what` is "frame pixels", "pixel data bytes" or "inflated data set".
    /// Refused before the pixels are decoded, or as soon as inflation passes the limit.
    case overBudget(file: String, what: String, size: UInt64, limit: UInt64, reason: String)

    public var file: String {
        switch self {
        case .unreadable(let f, _), .notDICOM(let f, _), .truncated(let f, _), .corrupt(let f, _),
             .unsupportedTransferSyntax(let f, _, _), .unsupportedPhotometric(let f, _), .unsupportedBits(let f, _),
             .missingAttribute(let f, _), .noDictionary(let f, _), .unwritable(let f, _), .notRegularFile(let f, _),
             .overBudget(let f, _, _, _, _), .undecodable(let f, _):
            f
        }
    }

    public var description: String {
        switch self {
        case .unreadable(let f, let r): "\(f): cannot read: \(r)"
        case .notDICOM(let f, let r): "\(f): \(r)"
        case .truncated(let f, let r): "\(f): truncated DICOM file: \(r)"
        case .corrupt(let f, let r): "\(f): corrupt DICOM file: \(r)"
        case .unsupportedTransferSyntax(let f, let uid, let name):
            "\(f): unsupported transfer syntax \(name) (\(uid)); read are the uncompressed ones, Deflated, RLE Lossless, JPEG and JPEG-LS (convert it first, e.g. with gdcmconv --raw)"
        case .undecodable(let f, let r): "\(f): corrupt compressed pixel data: \(r)"
        case .unsupportedPhotometric(let f, let r): "\(f): \(r)"
        case .unsupportedBits(let f, let r): "\(f): \(r)"
        case .missingAttribute(let f, let r): "\(f): not a readable image: \(r)"
        case .noDictionary(let f, let r): "\(f): \(r)"
        case .unwritable(let f, let r): "\(f): cannot write DICOM: \(r)"
        case .notRegularFile(let f, let kind): "\(f): is \(kind), not a regular file; give a DICOM file"
        case .overBudget(let f, _, _, _, let r): "\(f): too large to read: \(r) (see ImageLimits)"
        }
    }

    /// Maps a bridge return code and message to the typed error.
    static func from(code: Int32, message: String, file: String, info: lumen_dcm_info) -> DICOMError {
        switch Int(code) {
        case Int(LUMEN_DCM_IO): .unreadable(file: file, reason: message)
        case Int(LUMEN_DCM_NOT_DICOM): .notDICOM(file: file, reason: message)
        case Int(LUMEN_DCM_TRUNCATED): .truncated(file: file, reason: message)
        case Int(LUMEN_DCM_UNSUPPORTED_SYNTAX):
            .unsupportedTransferSyntax(file: file, uid: cString(info.transfer_syntax), name: cString(info.transfer_syntax_name))
        case Int(LUMEN_DCM_UNSUPPORTED_PHOTOMETRIC): .unsupportedPhotometric(file: file, reason: message)
        case Int(LUMEN_DCM_UNSUPPORTED_BITS): .unsupportedBits(file: file, reason: message)
        case Int(LUMEN_DCM_MISSING): .missingAttribute(file: file, reason: message)
        case Int(LUMEN_DCM_NO_DICTIONARY): .noDictionary(file: file, reason: message)
        case Int(LUMEN_DCM_DECODE): .undecodable(file: file, reason: message)
        case Int(LUMEN_DCM_NOT_REGULAR):
            .notRegularFile(file: file, kind: message.hasPrefix("is ") ? String(message.dropFirst(3).prefix { $0 != "," }) : message)
        case Int(LUMEN_DCM_OVER_BUDGET):
            .overBudget(file: file, what: cString(info.budget_what), size: info.budget_size, limit: info.budget_limit, reason: message)
        default: .corrupt(file: file, reason: message)
        }
    }
}

/// The message a bridge call left in its error buffer.
func bridgeMessage(_ err: [CChar]) -> String {
    String(decoding: err.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// A fixed-size C string field of a bridge struct as a Swift string.
func cString<T>(_ field: T) -> String {
    withUnsafeBytes(of: field) { raw in
        String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
    }
}
