// Narrow C interface over Eigen 3.4: plain doubles, row-major pointer + count pairs.
// No Eigen type crosses this header.
#ifndef LUMEN_EIGEN_H
#define LUMEN_EIGEN_H

#ifdef __cplusplus
extern "C" {
#endif

enum {
    LUMEN_EIGEN_OK = 0,
    LUMEN_EIGEN_BAD_SHAPE = 1,      ///< rows/cols outside 1…6 / 1…8
    LUMEN_EIGEN_NOT_FINITE = 2,     ///< NaN or infinity in the input
    LUMEN_EIGEN_SINGULAR = 3,       ///< the damped system could not be factorised
};

/// Damped least squares: dq = W Jᵀ (J W Jᵀ + λ² I)⁻¹ e.
/// `jacobian` is row-major rows × cols (rows 1…6, cols 1…8); `error` has rows entries;
/// `weights` has cols entries (NULL means all 1); `dq` receives cols entries.
int lumen_eigen_dls(const double *jacobian, int rows, int cols, const double *error,
                    const double *weights, double lambda, double *dq);

/// Camera calibration: the 3 × 4 projection matrix P with (u·w, v·w, w) = P · (x, y, z, 1) from
/// `count` ≥ 6 correspondences, by the normalised DLT (Hartley: both point sets centred and scaled),
/// then Levenberg–Marquardt on the sum of squared reprojection errors (pixels).
/// `points` holds count × (x, y, z), `pixels` count × (u, v); `P` receives 12 numbers, row-major,
/// scaled so that its third row's first three entries have unit length and the points lie in
/// front (w > 0). `linear_rms`/`rms` receive the RMS reprojection error (pixels, per point) of
/// the DLT and of the refined matrix; `iterations` the LM iterations used (any may be NULL).
/// LUMEN_EIGEN_BAD_SHAPE for count < 6, LUMEN_EIGEN_SINGULAR for degenerate configurations
/// (coplanar or collinear points, all pixels equal).
int lumen_eigen_calibrate_projection(const double *points, const double *pixels, int count, int max_iterations,
                                     double *P, double *linear_rms, double *rms, int *iterations);

#ifdef __cplusplus
}
#endif
#endif
