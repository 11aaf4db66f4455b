// Narrow C interface for catheter detection in fluoroscopy: the pixel-heavy part (log
// normalisation, background suppression, multi-scale Hessian ridge filter, non-maximum
// suppression, hysteresis, thinning and centerline tracing) runs here on OpenCV; choosing the
// catheter among the traced centerlines, its tip and the tracking happen in Swift (Imaging).
//
// Pixels are (u, v) = (column, row), (0, 0) at the centre of the top-left pixel. All outputs are
// in full-frame pixel coordinates, also when a region or a downsampled copy was processed.
// Functions return LUMEN_CV_OK or an error code of lumen_cv.h and, on error, a message in `err`.
#ifndef LUMEN_CV_TRACK_H
#define LUMEN_CV_TRACK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// What to process and how.
typedef struct {
    /// Region of the frame (clamped to it); width or height <= 0 means the whole frame.
    int roi_x, roi_y, roi_width, roi_height;
    /// 1 (full resolution) or 2 (a 2 × 2 area-averaged copy, for the full-frame search).
    int downsample;
    /// Ridge scales, Gaussian σ in full-resolution pixels (a dark line of width w answers best near σ ≈ w / 3).
    float sigma_min, sigma_max;
    int scale_count;
    /// Diameter (full-resolution px) of the top-hat element: structures wider than this are background.
    float tophat_px;
    /// Weight of the gradient penalty that suppresses one-sided edges (vessel borders): response −= edge · σ · |∇|.
    float edge_penalty;
    /// Hysteresis thresholds in robust noise units of the ridge response (median + k · 1.4826 · MAD).
    float high_k, low_k;
    /// Traced chains shorter than this many points are dropped.
    int min_points;
    /// Non-zero: damp ridges that answer more strongly at twice the widest scale (wider than a catheter).
    int wide_test;
} lumen_track_params;

/// One centerline point.
typedef struct {
    float u, v;          ///< full-frame px, refined across the ridge to sub-pixel
    float response;      ///< scale-normalised ridge strength, in noise units (÷ robust noise)
    float sigma;         ///< selected scale, full-resolution px
    float nx, ny;        ///< unit normal across the ridge
} lumen_track_point;

/// A compact dense spot (a radiopaque marker band is the densest, most compact part of a
/// catheter): a local maximum of the blob response, the scale-normalised smaller curvature of
/// the attenuation, −σ²·λ_max, which only a spot dense in every direction makes large (a line
/// has λ_max ≈ 0 along itself), in the same noise units as the ridge response.
typedef struct {
    float u, v;          ///< full-frame px, sub-pixel
    float strength;      ///< blob response in noise units
    float sigma;         ///< selected scale, full-resolution px
    float excess;        ///< attenuation above the local background, smoothed at that scale (log units)
} lumen_track_blob;

/// Traces the dark thin ridges (catheter candidates) of a 16-bit frame.
/// Writes `*point_count` points, grouped in `*chain_count` chains: chain k is
/// points[chain_start[k] ..< chain_start[k + 1]] (chain_start holds chain_capacity + 1 entries), ordered
/// along the ridge between two end or junction pixels. When a capacity is too small, the first
/// chains that fit are returned and the function still succeeds with `*truncated` = 1.
/// `*noise` receives the robust noise level of the raw response (for diagnostics).
int lumen_track_centerlines(const uint16_t *pixels, int width, int height, const lumen_track_params *params,
                            lumen_track_point *points, int point_capacity, int *point_count,
                            int *chain_start, int chain_capacity, int *chain_count, int *truncated,
                            float *noise, char *err, int err_len);

/// As lumen_track_centerlines, and also the blobs stronger than `high_k` noise units, strongest
/// first (at most `blob_capacity`; `blobs` may be null when `blob_capacity` is 0).
int lumen_track_features(const uint16_t *pixels, int width, int height, const lumen_track_params *params,
                         lumen_track_point *points, int point_capacity, int *point_count,
                         int *chain_start, int chain_capacity, int *chain_count, int *truncated,
                         lumen_track_blob *blobs, int blob_capacity, int *blob_count,
                         float *noise, char *err, int err_len);

/// Ridge response map of a frame (full-frame size, zero outside the region), for figures and tests.
int lumen_track_response_map(const uint16_t *pixels, int width, int height, const lumen_track_params *params,
                             float *response, char *err, int err_len);

/// OpenCV's worker threads for all later calls (1 = single core, as the benchmark measures).
void lumen_track_set_threads(int threads);

#ifdef __cplusplus
}
#endif
#endif
