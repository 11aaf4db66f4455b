// Narrow C interface over DCMTK 3.6 (dcmdata, dcmjpeg, dcmjpls): X-ray angiography / fluoroscopy
// DICOM files, greyscale, uncompressed or in the compressed syntaxes DCMTK's own codecs decode
// (RLE Lossless, JPEG lossless and lossy, JPEG-LS). No DCMTK type crosses this header: a file is an opaque handle, its
// header a plain struct, its pixels copied into caller buffers.
//
// Every function returns LUMEN_DCM_OK or an error code and, on error, writes a message into
// `err` (`err_len` bytes, NUL-terminated) when `err` is not NULL. No function throws or aborts
// on bad input.
#ifndef LUMEN_DCM_H
#define LUMEN_DCM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LUMEN_DCM_OK = 0,
    LUMEN_DCM_IO = 1,                       ///< the file could not be opened, read or written
    LUMEN_DCM_NOT_DICOM = 2,                ///< not a DICOM file (no DICM prefix and no parsable data set)
    LUMEN_DCM_TRUNCATED = 3,                ///< the data end before an element (or the pixel data) does
    LUMEN_DCM_CORRUPT = 4,                  ///< a malformed element, length or sequence
    LUMEN_DCM_UNSUPPORTED_SYNTAX = 5,       ///< a syntax no codec here decodes (JPEG 2000, say) or an unknown one (named in the message)
    LUMEN_DCM_UNSUPPORTED_PHOTOMETRIC = 6,  ///< not MONOCHROME1/2 with one sample per pixel
    LUMEN_DCM_UNSUPPORTED_BITS = 7,         ///< bits allocated/stored/high bit outside 8…16
    LUMEN_DCM_MISSING = 8,                  ///< a required attribute (rows, columns, pixel data…) is absent or invalid
    LUMEN_DCM_NO_DICTIONARY = 9,            ///< DCMTK's data dictionary could not be loaded
    LUMEN_DCM_ARGUMENT = 10,                ///< a bad pointer, size or frame index from the caller
    LUMEN_DCM_INTERNAL = 11,                ///< DCMTK raised an exception or ran out of memory
    LUMEN_DCM_NOT_REGULAR = 12,             ///< a directory, FIFO, device or socket: not opened for reading
    LUMEN_DCM_OVER_BUDGET = 13,             ///< the header or the inflated data ask for more than `lumen_dcm_limits` allows
    LUMEN_DCM_DECODE = 14,                  ///< a compressed frame that its codec could not decode (corrupt stream)
};

/// What opening a file may cost, checked before the cost is paid (from the header, or while
/// inflating). A zero field takes the default given beside it.
typedef struct {
    int64_t max_frame_pixels;        ///< rows × columns; default 4096 × 4096
    uint64_t max_pixel_data_bytes;   ///< rows × columns × frames × bytes a sample; default 0xFFFFFFFE (4 GiB)
    uint64_t max_inflated_bytes;     ///< the inflated data set of a Deflated file, held in memory; default 256 MiB
} lumen_dcm_limits;

/// The kind of image storage the SOP class says the file is.
enum {
    LUMEN_DCM_SOP_OTHER = 0,
    LUMEN_DCM_SOP_XA = 1,            ///< X-Ray Angiographic Image Storage 1.2.840.10008.5.1.4.1.1.12.1
    LUMEN_DCM_SOP_RF = 2,            ///< X-Ray Radiofluoroscopic Image Storage …12.2
    LUMEN_DCM_SOP_ENHANCED_XA = 3,   ///< Enhanced XA Image Storage …12.1.1
    LUMEN_DCM_SOP_ENHANCED_RF = 4,   ///< Enhanced XRF Image Storage …12.2.1
};

/// Transfer syntaxes the writer can produce (the reader takes any uncompressed one).
enum {
    LUMEN_DCM_EXPLICIT_LITTLE = 0,   ///< 1.2.840.10008.1.2.1 (the default)
    LUMEN_DCM_IMPLICIT_LITTLE = 1,   ///< 1.2.840.10008.1.2
    LUMEN_DCM_EXPLICIT_BIG = 2,      ///< 1.2.840.10008.1.2.2 (retired; for reader tests)
};

/// The header of an opened file. Geometry values are as in the file (mm, degrees, ms, 1/s);
/// each has a `has_…` flag, 1 when the tag is present with a usable (finite) value.
typedef struct {
    int32_t rows, columns, frames;
    int32_t bits_allocated, bits_stored, high_bit;
    int32_t pixel_representation;   ///< 0 unsigned, 1 two's complement
    int32_t monochrome1;            ///< 1 for MONOCHROME1 (minimum is white), 0 for MONOCHROME2
    int32_t sop_class;              ///< LUMEN_DCM_SOP_…
    int32_t has_rescale;
    double rescale_slope, rescale_intercept;   ///< 1 and 0 when absent
    int32_t has_source_to_detector, has_source_to_patient, has_imager_pixel_spacing;
    int32_t has_primary_angle, has_secondary_angle, has_frame_time, has_cine_rate;
    int32_t has_frame_time_vector;  ///< FrameTimeVector (0018,1065) with one entry per frame
    double source_to_detector;      ///< (0018,1110) mm
    double source_to_patient;       ///< (0018,1111) mm
    double imager_pixel_spacing[2]; ///< (0018,1164) mm: row spacing, column spacing
    double primary_angle;           ///< (0018,1510) degrees, LAO positive
    double secondary_angle;         ///< (0018,1511) degrees, cranial positive
    double frame_time;              ///< (0018,1063) ms between frames
    double cine_rate;               ///< (0018,0040) frames per second
    char transfer_syntax[72];       ///< UID
    char transfer_syntax_name[72];  ///< e.g. "Little Endian Explicit"
    char sop_class_uid[72];
    char patient_position[20];      ///< (0018,5100), e.g. "HFS"; empty when absent
    /// For LUMEN_DCM_OVER_BUDGET: what was over ("frame pixels", "pixel data bytes", "inflated data
    /// set"), how much (for an inflated data set: what was inflated when it stopped) and the limit.
    char budget_what[32];
    uint64_t budget_size, budget_limit;
    // Compressed pixel data (encapsulated), decoded frame by frame by DCMTK's codecs.
    int32_t compressed;             ///< 1 when the transfer syntax is encapsulated (RLE, JPEG, JPEG-LS)
    int32_t lossy;                  ///< 1 for a lossy syntax, or LossyImageCompression (0028,2110) "01"
    int32_t fragments;              ///< pixel data fragments after the offset table (compressed only)
    // VOI LUT (0028,1050/1051/1056; 0028,3010): the first window and the first LUT of the sequence.
    int32_t has_window;
    double window_center, window_width;
    char voi_lut_function[20];      ///< LINEAR (also when absent), LINEAR_EXACT or SIGMOID
    int32_t has_voi_lut;            ///< a usable LUT in VOILUTSequence: see lumen_dcm_voi_lut
    int32_t voi_lut_entries, voi_lut_first, voi_lut_bits;
    int32_t has_modality_lut_sequence;  ///< ModalityLUTSequence (0028,3000) present: not applied
    // Spacing and magnification.
    int32_t has_pixel_spacing;      ///< PixelSpacing (0028,0030), mm: row, column
    double pixel_spacing[2];
    int32_t has_magnification;      ///< EstimatedRadiographicMagnificationFactor (0018,1114)
    double magnification;
    // X-ray intensity relationship (0028,1040/1041).
    char pixel_intensity_relationship[20];   ///< LIN, LOG, DISP; empty when absent
    int32_t has_intensity_sign;
    int32_t intensity_sign;         ///< +1: larger values are more X-ray intensity; −1: less
    // Series and ordering, for folders of single-frame files.
    char series_uid[72];            ///< SeriesInstanceUID (0020,000E); empty when absent
    int32_t has_instance_number;
    int32_t instance_number;        ///< (0020,0013)
    int32_t has_acquisition_time;
    double acquisition_time;        ///< s since 1970-01-01 from AcquisitionDateTime, else Acquisition or Content date and time
} lumen_dcm_info;

typedef struct lumen_dcm lumen_dcm;

/// Opens and checks a file: on success `*out` is a handle for `lumen_dcm_frame` and
/// `lumen_dcm_frame_times` and must be closed with `lumen_dcm_close`. Large pixel data stay in
/// the file until frames are read. On failure `info` still holds what was learnt before the
/// problem (for LUMEN_DCM_UNSUPPORTED_SYNTAX: `transfer_syntax` and `transfer_syntax_name`).
///
/// Only a regular file is read: the path is checked with stat, opened non-blocking and checked
/// again with fstat on the descriptor (a FIFO never blocks the call). A Deflated Explicit VR
/// Little Endian file is inflated here, never by DCMTK, into memory of at most
/// `limits->max_inflated_bytes`: inflation stops as soon as that is passed. `limits` may be NULL
/// (the defaults).
int lumen_dcm_open_file(const char *path, const lumen_dcm_limits *limits, lumen_dcm **out, lumen_dcm_info *info,
                        char *err, int err_len);

/// As `lumen_dcm_open_file`, from `size` bytes in memory (copied into an anonymous memory file,
/// so that large values are read lazily as from disk; the caller may free its bytes).
int lumen_dcm_open_memory(const uint8_t *data, size_t size, const lumen_dcm_limits *limits, lumen_dcm **out,
                          lumen_dcm_info *info, char *err, int err_len);

/// Copies frame `index` (0-based) as stored values: the `bits_stored` bits at `high_bit`,
/// sign-extended when `pixel_representation` is 1, not yet rescaled or inverted.
/// `capacity` is the number of int32 in `values`, at least rows × columns.
int lumen_dcm_frame(lumen_dcm *handle, int32_t index, int32_t *values, int64_t capacity,
                    char *err, int err_len);

/// Copies the VOI LUT of `info` (when `info.has_voi_lut`): `voi_lut_entries` values into `values`.
int lumen_dcm_voi_lut(lumen_dcm *handle, uint16_t *values, int32_t count, char *err, int err_len);

/// Copies the FrameTimeVector (ms, `frames` entries; the first is the time from the first frame
/// to itself, normally 0). Only when `info.has_frame_time_vector`.
int lumen_dcm_frame_times(lumen_dcm *handle, double *ms, int32_t count, char *err, int err_len);

void lumen_dcm_close(lumen_dcm *handle);

/// What the writer puts in the header besides the pixels. `has_…` flags choose the optional tags.
typedef struct {
    int32_t rows, columns, frames;
    int32_t bits_allocated;         ///< 8 or 16
    int32_t bits_stored;            ///< 1…bits_allocated; high bit is bits_stored − 1
    int32_t pixel_representation;   ///< 0 unsigned, 1 two's complement
    int32_t monochrome1;
    int32_t sop_class;              ///< LUMEN_DCM_SOP_XA or LUMEN_DCM_SOP_RF
    int32_t transfer_syntax;        ///< LUMEN_DCM_EXPLICIT_LITTLE …
    int32_t has_rescale;
    double rescale_slope, rescale_intercept;
    int32_t has_geometry;           ///< writes SID, SOD, imager pixel spacing and both angles
    double source_to_detector, source_to_patient, pixel_spacing, primary_angle, secondary_angle;
    int32_t has_isocenter;          ///< a private LUMEN block (0029,10xx) with the isocentre, mm LPS
    double isocenter[3];
    int32_t has_frame_time;         ///< writes FrameTime (ms), CineRate and the frame increment pointer
    double frame_time;
} lumen_dcm_write_params;

/// Writes a multi-frame image file. `pixels` holds frames × rows × columns stored values
/// (the low `bits_stored` bits are used; signed values in two's complement).
int lumen_dcm_write(const char *path, const lumen_dcm_write_params *params, const uint16_t *pixels,
                    char *err, int err_len);

/// The private isocentre written by `lumen_dcm_write`, if the file has it: 1 and `xyz` filled, else 0.
int lumen_dcm_private_isocenter(lumen_dcm *handle, double *xyz);

#ifdef __cplusplus
}
#endif
#endif
