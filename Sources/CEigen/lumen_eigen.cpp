#include "lumen_eigen.h"

#include <Eigen/Dense>
#include <algorithm>
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

// MARK: Projection calibration (normalised DLT + Levenberg–Marquardt)

namespace {

struct Normalisation2 { Eigen::Vector2d centre; double scale; };
struct Normalisation3 { Eigen::Vector3d centre; double scale; };

// Sum of squared reprojection errors of the normalised matrix p (row-major 12) over the
// normalised points; `behind` counts points at or behind the source.
double reprojectionCost(const Eigen::Matrix<double, 12, 1> &p, const Eigen::MatrixXd &X, const Eigen::MatrixXd &x, int *behind) {
    double cost = 0;
    int back = 0;
    for (Eigen::Index i = 0; i < X.cols(); i++) {
        Eigen::Vector4d h(X(0, i), X(1, i), X(2, i), 1);
        double w = p.segment<4>(8).dot(h);
        if (!(std::fabs(w) > 1e-300)) { back++; cost += 1e300; continue; }
        double du = p.segment<4>(0).dot(h) / w - x(0, i), dv = p.segment<4>(4).dot(h) / w - x(1, i);
        cost += du * du + dv * dv;
    }
    if (behind) *behind = back;
    return cost;
}

}  // namespace

extern "C" int lumen_eigen_calibrate_projection(const double *points, const double *pixels, int count, int max_iterations,
                                                double *P, double *linear_rms, double *rms, int *iterations) {
    if (count < 6 || points == nullptr || pixels == nullptr || P == nullptr) return LUMEN_EIGEN_BAD_SHAPE;
    const Eigen::Index n = count;
    Eigen::Map<const Eigen::Matrix<double, 3, Eigen::Dynamic>> X0(points, 3, n);
    Eigen::Map<const Eigen::Matrix<double, 2, Eigen::Dynamic>> x0(pixels, 2, n);
    if (!X0.allFinite() || !x0.allFinite()) return LUMEN_EIGEN_NOT_FINITE;

    // Hartley normalisation: centroid at the origin, mean distance √3 (3D) and √2 (2D).
    Normalisation3 n3{X0.rowwise().mean(), 0};
    Normalisation2 n2{x0.rowwise().mean(), 0};
    double d3 = (X0.colwise() - n3.centre).colwise().norm().mean();
    double d2 = (x0.colwise() - n2.centre).colwise().norm().mean();
    if (!(d3 > 0) || !(d2 > 0)) return LUMEN_EIGEN_SINGULAR;
    n3.scale = std::sqrt(3.0) / d3;
    n2.scale = std::sqrt(2.0) / d2;
    Eigen::MatrixXd X = (X0.colwise() - n3.centre) * n3.scale;
    Eigen::MatrixXd x = (x0.colwise() - n2.centre) * n2.scale;

    // DLT: the right null vector of the 2n × 12 system, as the least eigenvector of AᵀA.
    Eigen::Matrix<double, 12, 12> AtA = Eigen::Matrix<double, 12, 12>::Zero();
    for (Eigen::Index i = 0; i < n; i++) {
        Eigen::Matrix<double, 1, 4> h(X(0, i), X(1, i), X(2, i), 1);
        Eigen::Matrix<double, 2, 12> rows = Eigen::Matrix<double, 2, 12>::Zero();
        rows.block<1, 4>(0, 0) = h;
        rows.block<1, 4>(0, 8) = -x(0, i) * h;
        rows.block<1, 4>(1, 4) = h;
        rows.block<1, 4>(1, 8) = -x(1, i) * h;
        AtA.noalias() += rows.transpose() * rows;
    }
    Eigen::SelfAdjointEigenSolver<Eigen::Matrix<double, 12, 12>> eig(AtA);
    if (eig.info() != Eigen::Success) return LUMEN_EIGEN_SINGULAR;
    const auto &ev = eig.eigenvalues();
    // A second (near-)null direction means the points do not pin P down (coplanar, collinear).
    if (!(ev(1) > 1e-10 * ev(11))) return LUMEN_EIGEN_SINGULAR;
    Eigen::Matrix<double, 12, 1> p = eig.eigenvectors().col(0);

    int behind = 0;
    double cost = reprojectionCost(p, X, x, &behind);
    if (linear_rms) *linear_rms = std::sqrt(cost / (double)n) / n2.scale;

    // Levenberg–Marquardt on the 12 entries (the scale is fixed by renormalising after each
    // step; the damping keeps that gauge direction from making the normal equations singular).
    double lambda = 1e-3;
    int it = 0;
    for (; it < max_iterations; it++) {
        Eigen::Matrix<double, 12, 12> H = Eigen::Matrix<double, 12, 12>::Zero();
        Eigen::Matrix<double, 12, 1> g = Eigen::Matrix<double, 12, 1>::Zero();
        for (Eigen::Index i = 0; i < n; i++) {
            Eigen::Matrix<double, 4, 1> h(X(0, i), X(1, i), X(2, i), 1);
            double w = p.segment<4>(8).dot(h);
            double u = p.segment<4>(0).dot(h) / w, v = p.segment<4>(4).dot(h) / w;
            Eigen::Matrix<double, 2, 12> J = Eigen::Matrix<double, 2, 12>::Zero();
            J.block<1, 4>(0, 0) = h.transpose() / w;
            J.block<1, 4>(0, 8) = -u * h.transpose() / w;
            J.block<1, 4>(1, 4) = h.transpose() / w;
            J.block<1, 4>(1, 8) = -v * h.transpose() / w;
            Eigen::Vector2d r(u - x(0, i), v - x(1, i));
            H.noalias() += J.transpose() * J;
            g.noalias() += J.transpose() * r;
        }
        bool improved = false;
        for (int tries = 0; tries < 12 && !improved; tries++) {
            Eigen::Matrix<double, 12, 12> A = H;
            A.diagonal() += lambda * (H.diagonal().array() + 1e-9 * H.diagonal().maxCoeff()).matrix();
            Eigen::Matrix<double, 12, 1> step = A.ldlt().solve(-g);
            if (!step.allFinite()) { lambda *= 10; continue; }
            Eigen::Matrix<double, 12, 1> candidate = (p + step).normalized();
            double c = reprojectionCost(candidate, X, x, nullptr);
            if (c < cost) {
                double relative = (cost - c) / std::max(cost, 1e-300);
                p = candidate;
                cost = c;
                lambda = std::max(lambda / 3, 1e-12);
                improved = true;
                if (relative < 1e-14) { it = max_iterations; }
            } else {
                lambda *= 4;
            }
        }
        if (!improved) break;
    }

    // Undo the normalisation: P = T2⁻¹ · Pn · T3.
    Eigen::Matrix<double, 3, 4, Eigen::RowMajor> Pn;
    for (int r = 0; r < 3; r++) Pn.row(r) = p.segment<4>(4 * r).transpose();
    Eigen::Matrix3d T2inv = Eigen::Matrix3d::Identity();
    T2inv(0, 0) = T2inv(1, 1) = 1 / n2.scale;
    T2inv(0, 2) = n2.centre(0);
    T2inv(1, 2) = n2.centre(1);
    Eigen::Matrix4d T3 = Eigen::Matrix4d::Identity() * n3.scale;
    T3(3, 3) = 1;
    T3.block<3, 1>(0, 3) = -n3.scale * n3.centre;
    Eigen::Matrix<double, 3, 4, Eigen::RowMajor> out = T2inv * Pn * T3;
    double norm = out.block<1, 3>(2, 0).norm();
    if (!(norm > 0)) return LUMEN_EIGEN_SINGULAR;
    out /= norm;
    Eigen::Vector4d centroid(n3.centre(0), n3.centre(1), n3.centre(2), 1);
    if (out.row(2).dot(centroid) < 0) out = -out;
    if (!out.allFinite()) return LUMEN_EIGEN_SINGULAR;
    Eigen::Map<Eigen::Matrix<double, 3, 4, Eigen::RowMajor>> result(P);
    result = out;
    if (rms) *rms = std::sqrt(cost / (double)n) / n2.scale;
    if (iterations) *iterations = std::min(it, max_iterations);
    return LUMEN_EIGEN_OK;
}
