#include "lumen_eigen.h"

#include <Eigen/Dense>
#include <cmath>

namespace {
// Fixed upper bounds keep every matrix on the stack: the solve never allocates.
using JMat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor, 6, 8>;
using Square = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, 0, 6, 6>;
using RowVec = Eigen::Matrix<double, Eigen::Dynamic, 1, 0, 6, 1>;
using ColVec = Eigen::Matrix<double, Eigen::Dynamic, 1, 0, 8, 1>;
}  // namespace

extern "C" int lumen_eigen_dls(const double *jacobian, int rows, int cols, const double *error,
                               const double *weights, double lambda, double *dq) {
    if (rows < 1 || rows > 6 || cols < 1 || cols > 8) return LUMEN_EIGEN_BAD_SHAPE;
    Eigen::Map<const JMat> J(jacobian, rows, cols);
    Eigen::Map<const RowVec> e(error, rows);
    if (!J.allFinite() || !e.allFinite() || !std::isfinite(lambda)) return LUMEN_EIGEN_NOT_FINITE;
    ColVec w = ColVec::Ones(cols);
    if (weights != nullptr) {
        w = Eigen::Map<const ColVec>(weights, cols);
        if (!w.allFinite()) return LUMEN_EIGEN_NOT_FINITE;
    }
    JMat JW = J * w.asDiagonal();
    Square A = JW * J.transpose();
    A.diagonal().array() += lambda * lambda;
    Eigen::LDLT<Square> ldlt(A);
    if (ldlt.info() != Eigen::Success) return LUMEN_EIGEN_SINGULAR;
    RowVec y = ldlt.solve(e);
    Eigen::Map<ColVec> out(dq, cols);
    out = JW.transpose() * y;
    return out.allFinite() ? LUMEN_EIGEN_OK : LUMEN_EIGEN_SINGULAR;
}
