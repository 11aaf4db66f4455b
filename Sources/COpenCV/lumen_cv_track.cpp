// Catheter ridge detection on OpenCV: see include/lumen_cv_track.h for the contract.
#include "lumen_cv_track.h"
#include "lumen_cv.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <exception>
#include <vector>

namespace {

int fail(int code, char *err, int err_len, const char *what) {
    if (err != nullptr && err_len > 0) std::snprintf(err, (size_t)err_len, "%s", what);
    return code;
}

/// The part of the frame being processed, and how it maps back to full-frame pixels.
struct Region {
    int x0 = 0, y0 = 0, w = 0, h = 0;  // full-resolution region
    int d = 1;                         // downsample factor
    int ww = 0, wh = 0;                // working size
    float toU(float x) const { return (float)x0 + (float)d * x + 0.5f * (float)(d - 1); }
    float toV(float y) const { return (float)y0 + (float)d * y + 0.5f * (float)(d - 1); }
};

/// The ridge response of a region: normalised strength (noise units), scale and normal.
struct Ridge {
    cv::Mat r, sigma, nx, ny;
    /// Blob response (noise units), its scale and the smoothed excess attenuation there; empty
    /// unless asked for.
    cv::Mat blob, blobSigma, blobExcess;
    float noise = 0;
};

bool paramsOK(const lumen_track_params &p) {
    return (p.downsample == 1 || p.downsample == 2) && std::isfinite(p.sigma_min) && std::isfinite(p.sigma_max) &&
           p.sigma_min > 0 && p.sigma_max >= p.sigma_min && p.sigma_max <= 32 && p.scale_count >= 1 &&
           p.scale_count <= 8 && std::isfinite(p.tophat_px) && p.tophat_px >= 0 && p.tophat_px <= 256 &&
           std::isfinite(p.edge_penalty) && p.edge_penalty >= 0 && std::isfinite(p.high_k) && std::isfinite(p.low_k) &&
           p.low_k <= p.high_k && p.min_points >= 2;
}

bool makeRegion(int width, int height, const lumen_track_params &p, Region &reg) {
    int x0 = p.roi_x, y0 = p.roi_y, w = p.roi_width, h = p.roi_height;
    if (w <= 0 || h <= 0) { x0 = 0; y0 = 0; w = width; h = height; }
    int x1 = std::min(width, x0 + w), y1 = std::min(height, y0 + h);
    x0 = std::max(0, x0); y0 = std::max(0, y0);
    reg.x0 = x0; reg.y0 = y0; reg.w = x1 - x0; reg.h = y1 - y0;
    reg.d = p.downsample;
    reg.ww = reg.w / reg.d; reg.wh = reg.h / reg.d;
    return reg.ww >= 8 && reg.wh >= 8;
}

/// Median and MAD of a sample of `m` (every `step`-th pixel of every `step`-th row).
void robustStats(const cv::Mat &m, int step, float &median, float &mad) {
    std::vector<float> s;
    s.reserve((size_t)(m.rows / step + 1) * (size_t)(m.cols / step + 1));
    for (int y = 0; y < m.rows; y += step) {
        const float *row = m.ptr<float>(y);
        for (int x = 0; x < m.cols; x += step) s.push_back(row[x]);
    }
    size_t mid = s.size() / 2;
    std::nth_element(s.begin(), s.begin() + (long)mid, s.end());
    median = s[mid];
    for (float &v : s) v = std::fabs(v - median);
    std::nth_element(s.begin(), s.begin() + (long)mid, s.end());
    mad = s[mid];
}

// The per-pixel arithmetic of the ridge filter is most of an acquisition's time. Where the CPU
// has AVX2 it runs 8 lanes wide instead of SSE's 4; the dispatch is made once at load time, and
// other CPUs run the baseline build. No fused multiply-add (contract off), so both builds of
// these passes round alike.
#if defined(__x86_64__) && defined(__clang__) && defined(__linux__)
#define LUMEN_WIDE_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define LUMEN_WIDE_CLONES
#endif

/// One row of `hessianResponse`. The borders clamp their neighbours; the interior needs no
/// clamp, so the compiler can vectorise it (the optional outputs are template flags, not branches
/// per pixel). Every pixel's arithmetic is the same as with a clamp on every pixel.
template <bool Normals, bool Blob>
__attribute__((always_inline)) inline void hessianRow(const float *__restrict gm, const float *__restrict g0,
                                                      const float *__restrict gp, int W, float norm2, float norm1,
                                                      float *__restrict rr, float *__restrict xx, float *__restrict yy,
                                                      float *__restrict bb) {
    auto at = [&](int x, int xm, int xp) __attribute__((always_inline)) {
        float dxx = g0[xp] - 2 * g0[x] + g0[xm];
        float dyy = gp[x] - 2 * g0[x] + gm[x];
        float dxy = 0.25f * (gp[xp] - gp[xm] - gm[xp] + gm[xm]);
        float gx = 0.5f * (g0[xp] - g0[xm]), gy = 0.5f * (gp[x] - gm[x]);
        float root = std::sqrt(0.25f * (dxx - dyy) * (dxx - dyy) + dxy * dxy);
        float low = 0.5f * (dxx + dyy) - root;  // most negative: across a bright ridge of attenuation
        rr[x] = -low * norm2 - norm1 * std::sqrt(gx * gx + gy * gy);
        if constexpr (Blob) bb[x] = -(0.5f * (dxx + dyy) + root) * norm2;
        if constexpr (Normals) {
            // Eigenvector of `low`: (dxy, low − dxx) or (low − dyy, dxy), the better conditioned.
            bool first = std::fabs(low - dxx) > std::fabs(low - dyy);
            float ex = first ? dxy : low - dyy, ey = first ? low - dxx : dxy;
            float n = std::sqrt(ex * ex + ey * ey);
            bool ok = n > 1e-20f;
            xx[x] = ok ? ex / n : 1;
            yy[x] = ok ? ey / n : 0;
        }
    };
    at(0, 0, std::min(W - 1, 1));
#pragma clang loop vectorize(assume_safety)
    for (int x = 1; x < W - 1; x++) at(x, x - 1, x + 1);
    if (W > 1) at(W - 1, W - 2, W - 1);
}

/// Hessian ridge response at one working-resolution scale `sw`: σ²·(−λ_min) − edge·σ·|∇|, and
/// the unit normal (eigenvector of λ_min); optionally the blob response σ²·(−λ_max).
/// The rows of `hessianResponse`.
LUMEN_WIDE_CLONES
void responseRows(const cv::Mat &g, float norm2, float norm1, cv::Mat &resp, cv::Mat *nx, cv::Mat *ny, cv::Mat *blob) {
#pragma clang fp contract(off)
    const int W = g.cols, H = g.rows;
    for (int y = 0; y < H; y++) {
        const float *gm = g.ptr<float>(std::max(0, y - 1)), *g0 = g.ptr<float>(y), *gp = g.ptr<float>(std::min(H - 1, y + 1));
        float *rr = resp.ptr<float>(y);
        float *xx = nx != nullptr ? nx->ptr<float>(y) : nullptr, *yy = ny != nullptr ? ny->ptr<float>(y) : nullptr;
        float *bb = blob != nullptr ? blob->ptr<float>(y) : nullptr;
        if (xx != nullptr && bb != nullptr) hessianRow<true, true>(gm, g0, gp, W, norm2, norm1, rr, xx, yy, bb);
        else if (xx != nullptr) hessianRow<true, false>(gm, g0, gp, W, norm2, norm1, rr, xx, yy, bb);
        else if (bb != nullptr) hessianRow<false, true>(gm, g0, gp, W, norm2, norm1, rr, xx, yy, bb);
        else hessianRow<false, false>(gm, g0, gp, W, norm2, norm1, rr, xx, yy, bb);
    }
}

void hessianResponse(const cv::Mat &a, float sw, float edge, cv::Mat &g, cv::Mat &resp, cv::Mat *nx, cv::Mat *ny,
                     cv::Mat *blob = nullptr) {
    const int W = a.cols, H = a.rows;
    cv::GaussianBlur(a, g, cv::Size(0, 0), sw, sw, cv::BORDER_REPLICATE);
    resp.create(H, W, CV_32F);
    if (nx != nullptr) { nx->create(H, W, CV_32F); ny->create(H, W, CV_32F); }
    if (blob != nullptr) blob->create(H, W, CV_32F);
    responseRows(g, sw * sw, sw * edge, resp, nx, ny, blob);
}

/// The median and robust spread of the ridge response to white noise whose fine high-pass
/// (as measured for the noise map) has unit spread: converts responses into noise units.
/// `blobSpread` is the same for the blob response, whose noise distribution is centred below
/// zero: only its spread is used, so that a flat background scores zero.
void calibration(float sw, float edge, float &median, float &spread, float &blobSpread) {
    static thread_local std::vector<std::array<float, 5>> cache;  // (σ, edge, median, spread, blob spread)
    for (const auto &c : cache)
        if (c[0] == sw && c[1] == edge) { median = c[2]; spread = c[3]; blobSpread = c[4]; return; }
    const int n = 192;
    cv::Mat noise(n, n, CV_32F);
    cv::RNG rng(12345);
    rng.fill(noise, cv::RNG::NORMAL, 0, 1);
    cv::GaussianBlur(noise, noise, cv::Size(0, 0), 0.7, 0.7, cv::BORDER_REPLICATE);
    cv::Mat sm, hp;
    cv::GaussianBlur(noise, sm, cv::Size(0, 0), 1.5, 1.5, cv::BORDER_REPLICATE);
    hp = noise - sm;
    float hm = 0, hmad = 0;
    robustStats(hp, 1, hm, hmad);
    noise /= std::max(1e-12f, 1.4826f * hmad);
    cv::Mat g, resp, blob;
    hessianResponse(noise, sw, edge, g, resp, nullptr, nullptr, &blob);
    float m = 0, mad = 0;
    robustStats(resp(cv::Rect(16, 16, n - 32, n - 32)), 1, m, mad);
    median = m;
    spread = std::max(1e-6f, 1.4826f * mad);
    robustStats(blob(cv::Rect(16, 16, n - 32, n - 32)), 1, m, mad);
    blobSpread = std::max(1e-6f, 1.4826f * mad);
    cache.push_back({sw, edge, median, spread, blobSpread});
}

/// One row of the scale selection: where this scale's response in noise units beats the best
/// so far, it and its scale, normal and raw response are kept. Branch-free over separate rows
/// (restrict), so the compiler vectorises it; a NaN never wins, as with a branch.
void keepBest(int W, const float *__restrict resp, const float *__restrict nm, const float *__restrict ax,
              const float *__restrict ay, float median, float spread, float sigma, float *__restrict rr,
              float *__restrict ss, float *__restrict xx, float *__restrict yy, float *__restrict rb) {
    // The rows are distinct (restrict); said again to the vectoriser, which does not see it
    // through the conditional selects.
#pragma clang loop vectorize(assume_safety)
    for (int x = 0; x < W; x++) {
        float v = (resp[x] / nm[x] - median) / spread;
        bool take = v > rr[x];
        rr[x] = take ? v : rr[x];
        ss[x] = take ? sigma : ss[x];
        xx[x] = take ? ax[x] : xx[x];
        yy[x] = take ? ay[x] : yy[x];
        rb[x] = take ? resp[x] : rb[x];
    }
}

/// The same for the blob response, with the blurred attenuation at the winning scale.
void keepBestBlob(int W, const float *__restrict bl, const float *__restrict nm, const float *__restrict gg,
                  float blobSpread, float sigma, float *__restrict ob, float *__restrict os, float *__restrict oe) {
#pragma clang loop vectorize(assume_safety)
    for (int x = 0; x < W; x++) {
        float v = bl[x] / (nm[x] * blobSpread);
        bool take = v > ob[x];
        ob[x] = take ? v : ob[x];
        os[x] = take ? sigma : os[x];
        oe[x] = take ? gg[x] : oe[x];
    }
}

/// One scale of the ridge filter over every row of `g` (that scale's blur): the Hessian response,
/// normals and blob response, kept where they beat the scales before (`keepBest`).
LUMEN_WIDE_CLONES
void scaleRows(const cv::Mat &g, const cv::Mat &noiseMap, bool wantBlobs, float norm2, float norm1, float median, float spread,
               float blobSpread, float sigma, float *buffers, Ridge &out, cv::Mat &rawBest) {
#pragma clang fp contract(off)
    const int W = g.cols, H = g.rows;
    float *resp = buffers, *ax = resp + W, *ay = ax + W, *bl = ay + W;
    for (int y = 0; y < H; y++) {
        const float *gm = g.ptr<float>(std::max(0, y - 1)), *g0 = g.ptr<float>(y), *gp = g.ptr<float>(std::min(H - 1, y + 1));
        if (wantBlobs) hessianRow<true, true>(gm, g0, gp, W, norm2, norm1, resp, ax, ay, bl);
        else hessianRow<true, false>(gm, g0, gp, W, norm2, norm1, resp, ax, ay, bl);
        const float *nm = noiseMap.ptr<float>(y);
        float *rr = out.r.ptr<float>(y), *ss = out.sigma.ptr<float>(y), *xx = out.nx.ptr<float>(y), *yy = out.ny.ptr<float>(y);
        float *rb = rawBest.ptr<float>(y);
        keepBest(W, resp, nm, ax, ay, median, spread, sigma, rr, ss, xx, yy, rb);
        if (wantBlobs)
            keepBestBlob(W, bl, nm, g0, blobSpread, sigma, out.blob.ptr<float>(y), out.blobSigma.ptr<float>(y),
                         out.blobExcess.ptr<float>(y));
    }
}

/// `raw` (counts) at half size, each pixel the mean of a 2 × 2 block, plus one: the counts are
/// read once, with no full-size float copy between.
LUMEN_WIDE_CLONES
void halve(const cv::Mat &raw, cv::Mat &out) {
#pragma clang fp contract(off)
    const int W = raw.cols / 2, H = raw.rows / 2;
    out.create(H, W, CV_32F);
    for (int y = 0; y < H; y++) {
        const uint16_t *__restrict r0 = raw.ptr<uint16_t>(2 * y), *__restrict r1 = raw.ptr<uint16_t>(2 * y + 1);
        float *__restrict o = out.ptr<float>(y);
        for (int x = 0; x < W; x++)
            o[x] = (float)((uint32_t)r0[2 * x] + r0[2 * x + 1] + r1[2 * x] + r1[2 * x + 1]) * 0.25f + 1.0f;
    }
}

/// The noise at every pixel: piecewise linear in the background level through the bins'
/// (level, noise) points, flat beyond the first and the last. Written as a sum of clamped
/// segments rather than a search for each pixel's segment, so that it runs in vector lanes.
LUMEN_WIDE_CLONES
void noiseRows(const cv::Mat &bg, const float *edges, const float *level, int m, cv::Mat &noiseMap) {
#pragma clang fp contract(off)
    const int W = bg.cols, H = bg.rows;
    // Per segment: its start, its width (a step where two edges coincide) and its slope.
    std::array<float, 16> start{}, width{}, slope{}, rise{};
    for (int k = 1; k < m; k++) {
        start[k] = edges[k - 1];
        width[k] = edges[k] - edges[k - 1];
        rise[k] = level[k] - level[k - 1];
        slope[k] = width[k] > 0 ? rise[k] / width[k] : 0;
    }
    const float first = level[0];
    for (int y = 0; y < H; y++) {
        const float *__restrict b = bg.ptr<float>(y);
        float *__restrict n = noiseMap.ptr<float>(y);
        for (int x = 0; x < W; x++) n[x] = first;
        // A segment at a time over the row: each pass is one short vector loop.
        for (int k = 1; k < m; k++) {
            const float s0 = start[k], w = width[k], sl = slope[k], r = rise[k];
            if (w > 0) {
                for (int x = 0; x < W; x++) n[x] += sl * std::min(std::max(b[x] - s0, 0.f), w);
            } else {
                for (int x = 0; x < W; x++) n[x] += b[x] > s0 ? r : 0.f;
            }
        }
    }
}

/// Log normalisation, background suppression, local noise, and the multi-scale Hessian ridge
/// filter with scale selection against wider structures.
void ridgeResponse(const uint16_t *pixels, int width, const Region &reg, const lumen_track_params &p, Ridge &out,
                   bool wantBlobs = false) {
    cv::Mat raw(reg.h, reg.w, CV_16UC1, const_cast<uint16_t *>(pixels + (size_t)reg.y0 * (size_t)width + reg.x0),
                (size_t)width * sizeof(uint16_t));
    // The working planes are kept from call to call on each thread: fresh ones cost the pages'
    // first-touch faults on every frame, a tenth of a whole-frame acquisition.
    static thread_local cv::Mat full, small, a, opened, bg, q, noiseMap, sm, hp, rawBest, g;
    // +1: the log of a zero count stays finite.
    if (reg.d == 2) halve(raw, small);
    else raw.convertTo(full, CV_32F, 1.0, 1.0);
    const cv::Mat &f = reg.d == 2 ? small : full;
    const int W = reg.ww, H = reg.wh;
    // Attenuation: −log(I). A dark catheter becomes a bright ridge; the dose scales out.
    cv::log(f, a);
    a.convertTo(a, -1, -1.0);
    cv::GaussianBlur(a, a, cv::Size(0, 0), 0.7, 0.7, cv::BORDER_REPLICATE);
    // Optional top-hat: structures wider than the element are removed.
    int k = (int)std::lround(p.tophat_px / (float)reg.d);
    if (k >= 3) {
        if (k % 2 == 0) k += 1;
        cv::morphologyEx(a, opened, cv::MORPH_OPEN, cv::getStructuringElement(cv::MORPH_RECT, cv::Size(k, k)),
                         cv::Point(-1, -1), 1, cv::BORDER_REPLICATE);
        a -= opened;
    }
    // Background suppression: subtract a wide Gaussian (3 × the widest catheter scale), which
    // removes the curvature of wide structures (a contrast-filled aorta around the catheter)
    // from the fine scales. Blurred on a quarter-size copy; the background is smooth.
    {
        cv::resize(a, q, cv::Size(std::max(1, W / 4), std::max(1, H / 4)), 0, 0, cv::INTER_AREA);
        float sb = 3 * p.sigma_max / (float)(4 * reg.d);
        cv::GaussianBlur(q, q, cv::Size(0, 0), sb, sb, cv::BORDER_REPLICATE);
        cv::resize(q, bg, cv::Size(W, H), 0, 0, cv::INTER_LINEAR);
    }
    // Local noise: quantum noise makes dark (dense) regions noisier in the log domain. The
    // robust spread of a fine high-pass, binned by the background level, gives the noise at
    // every pixel without assuming a detector model.
    noiseMap.create(H, W, CV_32F);
    {
        cv::GaussianBlur(a, sm, cv::Size(0, 0), 1.5, 1.5, cv::BORDER_REPLICATE);
        cv::subtract(a, sm, hp);
        const int bins = 12, step = std::max(1, std::min(W, H) / 160);
        std::vector<std::pair<float, float>> sample;  // (background, |hp|)
        for (int y = 0; y < H; y += step)
            for (int x = 0; x < W; x += step) sample.emplace_back(bg.at<float>(y, x), hp.at<float>(y, x));
        // Equal-count bins by background level: only the bins' boundaries and middles need
        // their sorted places, so each is selected (nth_element) rather than the whole sample
        // sorted. The cuts are a sort's, except that equal background levels may fall either
        // side of one (as an unstable sort may put them too).
        auto byLevel = [](const std::pair<float, float> &l, const std::pair<float, float> &r) { return l.first < r.first; };
        for (int b = 1; b < bins; b++) {
            size_t from = sample.size() * (size_t)(b - 1) / bins, cut = sample.size() * (size_t)b / bins;
            if (cut > from && cut < sample.size())
                std::nth_element(sample.begin() + (long)from, sample.begin() + (long)cut, sample.end(), byLevel);
        }
        std::vector<float> edges, level;
        for (int b = 0; b < bins; b++) {
            size_t i0 = sample.size() * (size_t)b / bins, i1 = sample.size() * (size_t)(b + 1) / bins;
            if (i1 <= i0) continue;
            std::nth_element(sample.begin() + (long)i0, sample.begin() + (long)((i0 + i1) / 2), sample.begin() + (long)i1, byLevel);
            std::vector<float> v;
            for (size_t i = i0; i < i1; i++) v.push_back(sample[i].second);
            size_t mid = v.size() / 2;
            std::nth_element(v.begin(), v.begin() + (long)mid, v.end());
            float med = v[mid];
            for (float &x : v) x = std::fabs(x - med);
            std::nth_element(v.begin(), v.begin() + (long)mid, v.end());
            edges.push_back(sample[(i0 + i1) / 2].first);
            level.push_back(std::max(1e-5f, 1.4826f * v[mid]));
        }
        noiseRows(bg, edges.data(), level.data(), std::min(16, (int)edges.size()), noiseMap);
    }
    a -= bg;
    auto plane = [H, W](cv::Mat &m, float v) { m.create(H, W, CV_32F); m.setTo(cv::Scalar(v)); };
    plane(out.r, -1e30f);
    plane(out.sigma, 0);
    plane(out.nx, 0);
    plane(out.ny, 1);
    plane(rawBest, 0);
    if (wantBlobs) {
        plane(out.blob, 0);
        plane(out.blobSigma, 0);
        plane(out.blobExcess, 0);
    }
    // Each scale's response, normals and blob response are made a row at a time and selected
    // from at once: as full-size planes they were written and read back once per scale, and
    // those passes are bound by memory, not arithmetic. The arithmetic is the same.
    std::vector<float> rowBuffers((size_t)W * 4);
    for (int s = 0; s < p.scale_count; s++) {
        float sigma = p.scale_count == 1 ? p.sigma_min
                                         : p.sigma_min * std::pow(p.sigma_max / p.sigma_min, (float)s / (float)(p.scale_count - 1));
        float sw = std::max(0.7f, sigma / (float)reg.d);  // working-resolution σ
        cv::GaussianBlur(a, g, cv::Size(0, 0), sw, sw, cv::BORDER_REPLICATE);
        const float norm2 = sw * sw, norm1 = sw * p.edge_penalty;
        // Signal to noise at this scale: the response a pure-noise image of the same local
        // noise would give (calibrated on synthetic white noise, measured the same way) is
        // the unit, so every scale and every region is compared in the same units.
        float median = 0, spread = 1, blobSpread = 1;
        calibration(sw, p.edge_penalty, median, spread, blobSpread);
        scaleRows(g, noiseMap, wantBlobs, norm2, norm1, median, spread, blobSpread, sigma, rowBuffers.data(), out, rawBest);
    }
    // Scale selection against wider structures: where a scale twice the widest catheter scale
    // answers more strongly (scale-normalised) than the selected catheter scale, the ridge is a
    // vessel or a bone, not a catheter. Computed on a half-size copy.
    if (p.wide_test != 0 && W >= 16 && H >= 16) {
        cv::Mat half, gw, wide;
        cv::resize(a(cv::Rect(0, 0, W / 2 * 2, H / 2 * 2)), half, cv::Size(W / 2, H / 2), 0, 0, cv::INTER_AREA);
        hessianResponse(half, 2 * p.sigma_max / (float)(2 * reg.d), p.edge_penalty, gw, wide, nullptr, nullptr);
        const int HW = wide.cols, HH = wide.rows;
        for (int y = 0; y < H; y++) {
            float *rr = out.r.ptr<float>(y);
            const float *rb = rawBest.ptr<float>(y), *ww = wide.ptr<float>(std::min(HH - 1, y / 2));
            for (int x = 0; x < W; x++) {
                float wv = ww[std::min(HW - 1, x / 2)];
                if (rr[x] > 0 && rb[x] > 0 && wv > rb[x]) rr[x] *= std::max(0.f, 2 - wv / rb[x]);
            }
        }
    }
}

float bilinear(const cv::Mat &m, float x, float y) {
    x = std::min(std::max(x, 0.f), (float)m.cols - 1.001f);
    y = std::min(std::max(y, 0.f), (float)m.rows - 1.001f);
    int x0 = (int)x, y0 = (int)y;
    float fx = x - (float)x0, fy = y - (float)y0;
    const float *r0 = m.ptr<float>(y0), *r1 = m.ptr<float>(y0 + 1);
    return (1 - fy) * ((1 - fx) * r0[x0] + fx * r0[x0 + 1]) + fy * ((1 - fx) * r1[x0] + fx * r1[x0 + 1]);
}

const int DX[8] = {1, 1, 0, -1, -1, -1, 0, 1};  // the 8 neighbours in circular order
const int DY[8] = {0, 1, 1, 1, 0, -1, -1, -1};

/// One Zhang–Suen thinning of the 0/1 mask (border pixels left out).
void thin(cv::Mat &mask) {
    const int W = mask.cols, H = mask.rows;
    std::vector<cv::Point> on;
    for (int y = 1; y < H - 1; y++)
        for (int x = 1; x < W - 1; x++)
            if (mask.at<uint8_t>(y, x)) on.emplace_back(x, y);
    std::vector<cv::Point> del;
    for (int iter = 0; iter < 50; iter++) {
        bool changed = false;
        for (int pass = 0; pass < 2; pass++) {
            del.clear();
            for (const cv::Point &q : on) {
                if (!mask.at<uint8_t>(q)) continue;
                // p2..p9 clockwise from north.
                uint8_t n[8];
                n[0] = mask.at<uint8_t>(q.y - 1, q.x); n[1] = mask.at<uint8_t>(q.y - 1, q.x + 1);
                n[2] = mask.at<uint8_t>(q.y, q.x + 1); n[3] = mask.at<uint8_t>(q.y + 1, q.x + 1);
                n[4] = mask.at<uint8_t>(q.y + 1, q.x); n[5] = mask.at<uint8_t>(q.y + 1, q.x - 1);
                n[6] = mask.at<uint8_t>(q.y, q.x - 1); n[7] = mask.at<uint8_t>(q.y - 1, q.x - 1);
                int b = 0, a = 0;
                for (int i = 0; i < 8; i++) { b += n[i]; a += (!n[i] && n[(i + 1) % 8]); }
                if (b < 2 || b > 6 || a != 1) continue;
                if (pass == 0 ? (n[0] * n[2] * n[4] == 0 && n[2] * n[4] * n[6] == 0)
                              : (n[0] * n[2] * n[6] == 0 && n[0] * n[4] * n[6] == 0))
                    del.push_back(q);
            }
            for (const cv::Point &q : del) mask.at<uint8_t>(q) = 0;
            if (!del.empty()) changed = true;
        }
        if (!changed) break;
    }
}

/// Ridge pixels: non-maximum suppression across the ridge, hysteresis, thinning.
cv::Mat ridgeMask(const Ridge &r, const lumen_track_params &p) {
    const int W = r.r.cols, H = r.r.rows;
    cv::Mat cand(H, W, CV_8U, cv::Scalar(0));
    std::vector<cv::Point> seeds;
    for (int y = 1; y < H - 1; y++) {
        const float *rr = r.r.ptr<float>(y), *xx = r.nx.ptr<float>(y), *yy = r.ny.ptr<float>(y);
        uint8_t *c = cand.ptr<uint8_t>(y);
        for (int x = 1; x < W - 1; x++) {
            float v = rr[x];
            if (v < p.low_k) continue;
            int ox = (int)std::lround(xx[x]), oy = (int)std::lround(yy[x]);
            float a = r.r.at<float>(y + oy, x + ox), b = r.r.at<float>(y - oy, x - ox);
            if (v >= a && v > b) {
                c[x] = 1;
                if (v >= p.high_k) seeds.emplace_back(x, y);
            }
        }
    }
    // Hysteresis: keep weak ridge pixels connected to a strong one.
    cv::Mat keep(H, W, CV_8U, cv::Scalar(0));
    std::vector<cv::Point> stack;
    for (const cv::Point &s : seeds) {
        if (keep.at<uint8_t>(s)) continue;
        keep.at<uint8_t>(s) = 1;
        stack.push_back(s);
        while (!stack.empty()) {
            cv::Point q = stack.back();
            stack.pop_back();
            for (int i = 0; i < 8; i++) {
                int x = q.x + DX[i], y = q.y + DY[i];
                if (x < 1 || y < 1 || x >= W - 1 || y >= H - 1) continue;
                if (cand.at<uint8_t>(y, x) && !keep.at<uint8_t>(y, x)) {
                    keep.at<uint8_t>(y, x) = 1;
                    stack.emplace_back(x, y);
                }
            }
        }
    }
    thin(keep);
    return keep;
}

/// Number of 0 → 1 transitions around a pixel: 1 at an end, 2 along a line, ≥ 3 at a junction.
int crossings(const cv::Mat &m, int x, int y) {
    int c = 0;
    for (int i = 0; i < 8; i++) {
        int xa = x + DX[i], ya = y + DY[i], xb = x + DX[(i + 1) % 8], yb = y + DY[(i + 1) % 8];
        bool a = xa >= 0 && ya >= 0 && xa < m.cols && ya < m.rows && m.at<uint8_t>(ya, xa);
        bool b = xb >= 0 && yb >= 0 && xb < m.cols && yb < m.rows && m.at<uint8_t>(yb, xb);
        c += (!a && b);
    }
    return c;
}

bool on(const cv::Mat &m, int x, int y) { return x >= 0 && y >= 0 && x < m.cols && y < m.rows && m.at<uint8_t>(y, x); }

/// Ordered chains of skeleton pixels between end or junction pixels (closed loops from any pixel).
std::vector<std::vector<cv::Point>> trace(const cv::Mat &skel) {
    const int W = skel.cols, H = skel.rows;
    cv::Mat node(H, W, CV_8U, cv::Scalar(0)), seen(H, W, CV_8U, cv::Scalar(0));
    std::vector<cv::Point> nodes, all;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (skel.at<uint8_t>(y, x)) {
                all.emplace_back(x, y);
                int c = crossings(skel, x, y);
                if (c != 2) { node.at<uint8_t>(y, x) = 1; nodes.emplace_back(x, y); }
            }
    std::vector<std::vector<cv::Point>> chains;
    // Walks from `start` through `first` until a node (kept as the last point) or a dead end.
    auto walk = [&](cv::Point start, cv::Point first) {
        std::vector<cv::Point> chain{start};
        cv::Point prev = start, cur = first;
        for (;;) {
            chain.push_back(cur);
            if (node.at<uint8_t>(cur)) break;
            seen.at<uint8_t>(cur) = 1;
            cv::Point next(-1, -1);
            // 4-neighbours first, so staircase corners are not skipped over.
            for (int pass = 0; pass < 2 && next.x < 0; pass++)
                for (int i = pass; i < 8; i += 2) {
                    int x = cur.x + DX[i], y = cur.y + DY[i];
                    if (!on(skel, x, y) || (x == prev.x && y == prev.y) || (x == start.x && y == start.y && chain.size() < 3)) continue;
                    if (node.at<uint8_t>(y, x) || !seen.at<uint8_t>(y, x)) { next = cv::Point(x, y); break; }
                }
            if (next.x < 0) break;
            prev = cur;
            cur = next;
            if (cur == start) { chain.push_back(cur); break; }
        }
        chains.push_back(std::move(chain));
    };
    for (const cv::Point &n : nodes)
        for (int i = 0; i < 8; i++) {
            int x = n.x + DX[i], y = n.y + DY[i];
            if (on(skel, x, y) && !node.at<uint8_t>(y, x) && !seen.at<uint8_t>(y, x)) walk(n, cv::Point(x, y));
        }
    // Closed loops have no nodes: start anywhere on them.
    for (const cv::Point &q : all) {
        if (seen.at<uint8_t>(q) || node.at<uint8_t>(q)) continue;
        seen.at<uint8_t>(q) = 1;
        for (int i = 0; i < 8; i++) {
            int x = q.x + DX[i], y = q.y + DY[i];
            if (on(skel, x, y) && !seen.at<uint8_t>(y, x)) { walk(q, cv::Point(x, y)); break; }
        }
    }
    return chains;
}

/// Local maxima of the blob response above `high_k`, strongest first, sub-pixel by a parabola
/// through the neighbours along each axis.
std::vector<lumen_track_blob> findBlobs(const Ridge &r, const Region &reg, const lumen_track_params &p) {
    std::vector<lumen_track_blob> out;
    if (r.blob.empty()) return out;
    const int W = r.blob.cols, H = r.blob.rows;
    for (int y = 1; y < H - 1; y++) {
        const float *bm = r.blob.ptr<float>(y - 1), *b0 = r.blob.ptr<float>(y), *bp = r.blob.ptr<float>(y + 1);
        for (int x = 1; x < W - 1; x++) {
            float v = b0[x];
            if (v < p.high_k) continue;
            // Strict on the earlier neighbours, loose on the later: one maximum per plateau.
            if (!(v > bm[x - 1] && v > bm[x] && v > bm[x + 1] && v > b0[x - 1] && v >= b0[x + 1] && v >= bp[x - 1] && v >= bp[x] &&
                  v >= bp[x + 1]))
                continue;
            float dx = 0, dy = 0;
            float den = b0[x - 1] - 2 * v + b0[x + 1];
            if (den < 0) dx = std::min(0.5f, std::max(-0.5f, 0.5f * (b0[x - 1] - b0[x + 1]) / den));
            den = bm[x] - 2 * v + bp[x];
            if (den < 0) dy = std::min(0.5f, std::max(-0.5f, 0.5f * (bm[x] - bp[x]) / den));
            lumen_track_blob b;
            b.u = reg.toU((float)x + dx);
            b.v = reg.toV((float)y + dy);
            b.strength = v;
            b.sigma = r.blobSigma.at<float>(y, x);
            b.excess = r.blobExcess.at<float>(y, x);
            out.push_back(b);
        }
    }
    std::sort(out.begin(), out.end(), [](const lumen_track_blob &l, const lumen_track_blob &q) { return l.strength > q.strength; });
    return out;
}

}  // namespace

extern "C" int lumen_track_centerlines(const uint16_t *pixels, int width, int height, const lumen_track_params *params,
                                       lumen_track_point *points, int point_capacity, int *point_count,
                                       int *chain_start, int chain_capacity, int *chain_count, int *truncated,
                                       float *noise, char *err, int err_len) {
    return lumen_track_features(pixels, width, height, params, points, point_capacity, point_count, chain_start, chain_capacity,
                                chain_count, truncated, nullptr, 0, nullptr, noise, err, err_len);
}

extern "C" int lumen_track_features(const uint16_t *pixels, int width, int height, const lumen_track_params *params,
                                    lumen_track_point *points, int point_capacity, int *point_count,
                                    int *chain_start, int chain_capacity, int *chain_count, int *truncated,
                                    lumen_track_blob *blobs, int blob_capacity, int *blob_count,
                                    float *noise, char *err, int err_len) {
    if (pixels == nullptr || params == nullptr || points == nullptr || point_count == nullptr || chain_start == nullptr ||
        chain_count == nullptr || truncated == nullptr || width <= 0 || height <= 0 || chain_capacity < 1 || blob_capacity < 0 ||
        (blob_capacity > 0 && (blobs == nullptr || blob_count == nullptr)))
        return fail(LUMEN_CV_ARGUMENT, err, err_len, "bad image size or pointer");
    if (!paramsOK(*params)) return fail(LUMEN_CV_ARGUMENT, err, err_len, "bad ridge parameters");
    Region reg;
    if (!makeRegion(width, height, *params, reg)) return fail(LUMEN_CV_ARGUMENT, err, err_len, "region too small (under 8 × 8 working pixels)");
    try {
        static thread_local Ridge ridge;  // its planes too are kept, as ridgeResponse's are
        ridgeResponse(pixels, width, reg, *params, ridge, blob_capacity > 0);
        if (noise != nullptr) *noise = ridge.noise;
        if (blob_count != nullptr) *blob_count = 0;
        if (blob_capacity > 0) {
            auto found = findBlobs(ridge, reg, *params);
            int nb = std::min(blob_capacity, (int)found.size());
            std::copy(found.begin(), found.begin() + nb, blobs);
            *blob_count = nb;
        }
        cv::Mat skel = ridgeMask(ridge, *params);
        auto chains = trace(skel);
        int np = 0, nc = 0;
        *truncated = 0;
        chain_start[0] = 0;
        for (const auto &c : chains) {
            if ((int)c.size() < params->min_points) continue;
            if (nc >= chain_capacity || np + (int)c.size() > point_capacity) { *truncated = 1; break; }
            for (const cv::Point &q : c) {
                float nx = ridge.nx.at<float>(q), ny = ridge.ny.at<float>(q);
                // Sub-pixel across the ridge: the vertex of a parabola through three samples.
                float r0 = ridge.r.at<float>(q);
                float rm = bilinear(ridge.r, (float)q.x - nx, (float)q.y - ny);
                float rp = bilinear(ridge.r, (float)q.x + nx, (float)q.y + ny);
                float den = rm - 2 * r0 + rp, t = 0;
                if (den < 0) t = std::min(0.5f, std::max(-0.5f, 0.5f * (rm - rp) / den));
                lumen_track_point &o = points[np++];
                o.u = reg.toU((float)q.x + t * nx);
                o.v = reg.toV((float)q.y + t * ny);
                o.response = r0;
                o.sigma = ridge.sigma.at<float>(q);
                o.nx = nx;
                o.ny = ny;
            }
            nc++;
            chain_start[nc] = np;
        }
        *point_count = np;
        *chain_count = nc;
        return LUMEN_CV_OK;
    } catch (const std::exception &e) {
        return fail(LUMEN_CV_INTERNAL, err, err_len, e.what());
    }
}

extern "C" int lumen_track_response_map(const uint16_t *pixels, int width, int height, const lumen_track_params *params,
                                        float *response, char *err, int err_len) {
    if (pixels == nullptr || params == nullptr || response == nullptr || width <= 0 || height <= 0)
        return fail(LUMEN_CV_ARGUMENT, err, err_len, "bad image size or pointer");
    if (!paramsOK(*params)) return fail(LUMEN_CV_ARGUMENT, err, err_len, "bad ridge parameters");
    Region reg;
    if (!makeRegion(width, height, *params, reg)) return fail(LUMEN_CV_ARGUMENT, err, err_len, "region too small (under 8 × 8 working pixels)");
    try {
        Ridge ridge;
        ridgeResponse(pixels, width, reg, *params, ridge);
        cv::Mat out(height, width, CV_32F, response);
        out.setTo(0);
        cv::Mat up;
        if (reg.d == 1) up = ridge.r;
        else cv::resize(ridge.r, up, cv::Size(reg.ww * reg.d, reg.wh * reg.d), 0, 0, cv::INTER_NEAREST);
        up.copyTo(out(cv::Rect(reg.x0, reg.y0, up.cols, up.rows)));
        return LUMEN_CV_OK;
    } catch (const std::exception &e) {
        return fail(LUMEN_CV_INTERNAL, err, err_len, e.what());
    }
}

extern "C" void lumen_track_set_threads(int threads) { cv::setNumThreads(std::max(0, threads)); }
