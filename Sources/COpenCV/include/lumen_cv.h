// Narrow C interface over OpenCV 4.6 (core, imgproc, imgcodecs): images are plain
// pointer + width + height buffers owned by the caller. No OpenCV type crosses this header.
// Every function returns LUMEN_CV_OK or an error code and, on error, writes a message into
// `err` (`err_len` bytes, NUL-terminated) when `err` is not NULL.
#ifndef LUMEN_CV_H
#define LUMEN_CV_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LUMEN_CV_OK = 0,
    LUMEN_CV_IO = 1,          ///< the file could not be read or written
    LUMEN_CV_FORMAT = 2,      ///< decoded, but not the expected kind of image
    LUMEN_CV_CAPACITY = 3,    ///< the caller's buffer is too small (see width/height)
    LUMEN_CV_ARGUMENT = 4,    ///< a bad size or pointer
    LUMEN_CV_INTERNAL = 5,    ///< OpenCV raised an exception
};

/// Writes a single-channel 16-bit PNG.
int lumen_cv_write_png16(const char *path, const uint16_t *pixels, int width, int height,
                         char *err, int err_len);

/// Decodes an encoded image (`size` bytes, e.g. a PNG file read by the caller) that must be
/// single-channel 16-bit, or 8-bit when `accept_8bit` (values widened, not rescaled), and exactly
/// `width` × `height`, the size its header declared: `pixels` holds width × height values.
/// Nothing is converted silently: colour, palette or another size is LUMEN_CV_FORMAT.
int lumen_cv_decode_gray16(const uint8_t *data, int64_t size, uint16_t *pixels, int width, int height,
                           int accept_8bit, char *err, int err_len);

/// Writes an 8-bit RGB image (row-major, 3 bytes a pixel) as PNG.
int lumen_cv_write_png_rgb8(const char *path, const uint8_t *rgb, int width, int height,
                            char *err, int err_len);

/// Gaussian blur of a float image in place-free form (`src` and `dst` may not alias).
int lumen_cv_gaussian_blur_f32(const float *src, float *dst, int width, int height,
                               double sigma, char *err, int err_len);

/// Grey values to pixels: each of `n` values rounded half up and clamped to 0…`max_value`
/// (values at or below 0 give 0), then `max_value` − it where `inverted` is non-zero
/// (MONOCHROME1). Not a number gives 0.
void lumen_cv_quantise_u16(const float *values, uint16_t *pixels, int64_t n, uint16_t max_value, int inverted);

/// Anti-aliased polyline on an RGB8 canvas; `xy` holds `count` (x, y) pixel pairs.
int lumen_cv_draw_polyline(uint8_t *rgb, int width, int height, const double *xy, int count,
                           uint8_t r, uint8_t g, uint8_t b, int thickness, int closed);

/// Filled or outlined (thickness > 0) circle on an RGB8 canvas.
int lumen_cv_draw_circle(uint8_t *rgb, int width, int height, double x, double y, double radius,
                         uint8_t r, uint8_t g, uint8_t b, int thickness);

/// Text on an RGB8 canvas with its baseline-left corner at (x, y).
int lumen_cv_draw_text(uint8_t *rgb, int width, int height, const char *text, int x, int y,
                       double scale, uint8_t r, uint8_t g, uint8_t b);

/// Width in pixels that `lumen_cv_draw_text` takes for `text` at `scale` (0 for a null text or a
/// failure). The corresponding OpenCV function is `getTextSize`.
int lumen_cv_text_width(const char *text, double scale);

/// Encodes a single-channel 16-bit image in memory: `format` 0 is PNG (lossless, 16-bit, `quality`
/// is the zlib level 0…9, `low`/`high` unused; level 1 with the Sub filter on every row, the
/// fastest), 1 is 8-bit JPEG of the window `low`…`high` (mapped linearly onto 0…255, clipped
/// outside; `quality` 1…100), 2 is PNG with libpng's adaptive filter choice at every level. Writes at most `capacity` bytes to `out`
/// and the encoded size to `size`; LUMEN_CV_CAPACITY when it does not fit.
int lumen_cv_encode_gray16(const uint16_t *pixels, int width, int height, int format, int quality, int low, int high,
                           uint8_t *out, int64_t capacity, int64_t *size, char *err, int err_len);

#ifdef __cplusplus
}
#endif
#endif
