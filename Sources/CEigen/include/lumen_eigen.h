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

#ifdef __cplusplus
}
#endif
#endif
