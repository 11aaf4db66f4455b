#include "lumen_cv.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <climits>
#include <cstring>
#include <cstdio>
#include <exception>
#include <vector>

namespace {

int fail(int code, char *err, int err_len, const char *what, const char *detail = "") {
    if (err != nullptr && err_len > 0) std::snprintf(err, (size_t)err_len, "%s%s", what, detail);
    return code;
}

bool canvasOK(const uint8_t *rgb, int width, int height) {
    return rgb != nullptr && width > 0 && height > 0;
}

// Canvases are RGB in memory (converted to BGR only when written), so colours go in as RGB.
cv::Scalar rgbColour(uint8_t r, uint8_t g, uint8_t b) { return cv::Scalar(r, g, b); }

}  // namespace

extern "C" int lumen_cv_write_png16(const char *path, const uint16_t *pixels, int width, int height,
                                    char *err, int err_len) {
    if (path == nullptr || pixels == nullptr || width <= 0 || height <= 0)
        return fail(LUMEN_CV_ARGUMENT, err, err_len, "bad image size or pointer");
    try {
        cv::Mat m(height, width, CV_16UC1, const_cast<uint16_t *>(pixels));
        if (!cv::imwrite(path, m)) return fail(LUMEN_CV_IO, err, err_len, "cannot write ", path);
        return LUMEN_CV_OK;
    } catch (const std::exception &e) {
        return fail(LUMEN_CV_INTERNAL, err, err_len, e.what());
    }
}

extern "C" int lumen_cv_decode_gray16(const uint8_t *data, int64_t size, uint16_t *pixels, int width, int height,
                                      int accept_8bit, char *err, int err_len) {
    if (data == nullptr || pixels == nullptr || size <= 0 || width <= 0 || height <= 0)
        return fail(LUMEN_CV_ARGUMENT, err, err_len, "null buffer or bad size");
    try {
        // IMREAD_UNCHANGED: no silent conversion of colour, palette or bit depth; the caller
        // checked the header, and what was decoded must agree with it.
        cv::Mat encoded(1, (int)std::min<int64_t>(size, INT32_MAX), CV_8UC1, const_cast<uint8_t *>(data));
        cv::Mat m = cv::imdecode(encoded, cv::IMREAD_UNCHANGED);
        if (m.empty()) return fail(LUMEN_CV_IO, err, err_len, "cannot decode the image (corrupt or truncated)");
        bool grey16 = m.type() == CV_16UC1, grey8 = m.type() == CV_8UC1;
        if (!grey16 && !(grey8 && accept_8bit))
            return fail(LUMEN_CV_FORMAT, err, err_len, "decoded as something other than the single-channel image its header declares");
        if (m.cols != width || m.rows != height) return fail(LUMEN_CV_FORMAT, err, err_len, "decoded size differs from the header");
        cv::Mat out(m.rows, m.cols, CV_16UC1, pixels);
        m.convertTo(out, CV_16U);
        return LUMEN_CV_OK;
    } catch (const std::exception &e) {
        return fail(LUMEN_CV_INTERNAL, err, err_len, e.what());
    }
}

extern "C" int lumen_cv_write_png_rgb8(const char *path, const uint8_t *rgb, int width, int height,
                                       char *err, int err_len) {
    if (path == nullptr || !canvasOK(rgb, width, height))
        return fail(LUMEN_CV_ARGUMENT, err, err_len, "bad image size or pointer");
    try {
        cv::Mat m(height, width, CV_8UC3, const_cast<uint8_t *>(rgb));
        cv::Mat bgrImage;
        cv::cvtColor(m, bgrImage, cv::COLOR_RGB2BGR);
        if (!cv::imwrite(path, bgrImage)) return fail(LUMEN_CV_IO, err, err_len, "cannot write ", path);
        return LUMEN_CV_OK;
    } catch (const std::exception &e) {
        return fail(LUMEN_CV_INTERNAL, err, err_len, e.what());
    }
}

extern "C" void lumen_cv_quantise_u16(const float *values, uint16_t *pixels, int64_t n, uint16_t max_value, int inverted) {
    // Branch-free (clamp, then truncate value + ½), so that the loop vectorises; the same
    // pixels as `value <= 0 ? 0 : value >= max ? max : trunc(value + ½)` for every value.
    const float top = (float)max_value;
    if (inverted) {
        for (int64_t i = 0; i < n; i++) {
            float v = values[i] > 0 ? values[i] : 0;
            v = v < top ? v : top;
            pixels[i] = (uint16_t)(max_value - (uint16_t)(int32_t)(v + 0.5f));
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            float v = values[i] > 0 ? values[i] : 0;
            v = v < top ? v : top;
            pixels[i] = (uint16_t)(int32_t)(v + 0.5f);
        }
    }
}

extern "C" int lumen_cv_gaussian_blur_f32(const float *src, float *dst, int width, int height,
                                          double sigma, char *err, int err_len) {
    if (src == nullptr || dst == nullptr || width <= 0 || height <= 0 || !(sigma > 0))
        return fail(LUMEN_CV_ARGUMENT, err, err_len, "bad image size, pointer or sigma");
    try {
        cv::Mat in(height, width, CV_32FC1, const_cast<float *>(src));
        cv::Mat out(height, width, CV_32FC1, dst);
        cv::GaussianBlur(in, out, cv::Size(0, 0), sigma, sigma, cv::BORDER_REPLICATE);
        return LUMEN_CV_OK;
    } catch (const std::exception &e) {
        return fail(LUMEN_CV_INTERNAL, err, err_len, e.what());
    }
}

extern "C" int lumen_cv_draw_polyline(uint8_t *rgb, int width, int height, const double *xy, int count,
                                      uint8_t r, uint8_t g, uint8_t b, int thickness, int closed) {
    if (!canvasOK(rgb, width, height) || xy == nullptr || count < 2) return LUMEN_CV_ARGUMENT;
    try {
        cv::Mat m(height, width, CV_8UC3, rgb);
        // Sub-pixel coordinates through OpenCV's fixed-point shift.
        const int shift = 4;
        const double scale = 1 << shift;
        std::vector<cv::Point> pts;
        pts.reserve((size_t)count);
        for (int i = 0; i < count; i++)
            pts.emplace_back(cv::saturate_cast<int>(xy[2 * i] * scale), cv::saturate_cast<int>(xy[2 * i + 1] * scale));
        cv::polylines(m, pts, closed != 0, rgbColour(r, g, b), thickness, cv::LINE_AA, shift);
        return LUMEN_CV_OK;
    } catch (const std::exception &) {
        return LUMEN_CV_INTERNAL;
    }
}

extern "C" int lumen_cv_draw_circle(uint8_t *rgb, int width, int height, double x, double y, double radius,
                                    uint8_t r, uint8_t g, uint8_t b, int thickness) {
    if (!canvasOK(rgb, width, height)) return LUMEN_CV_ARGUMENT;
    try {
        cv::Mat m(height, width, CV_8UC3, rgb);
        const int shift = 4;
        const double scale = 1 << shift;
        cv::circle(m, cv::Point(cv::saturate_cast<int>(x * scale), cv::saturate_cast<int>(y * scale)),
                   cv::saturate_cast<int>(radius * scale), rgbColour(r, g, b), thickness > 0 ? thickness : cv::FILLED,
                   cv::LINE_AA, shift);
        return LUMEN_CV_OK;
    } catch (const std::exception &) {
        return LUMEN_CV_INTERNAL;
    }
}

extern "C" int lumen_cv_draw_text(uint8_t *rgb, int width, int height, const char *text, int x, int y,
                                  double scale, uint8_t r, uint8_t g, uint8_t b) {
    if (!canvasOK(rgb, width, height) || text == nullptr) return LUMEN_CV_ARGUMENT;
    try {
        cv::Mat m(height, width, CV_8UC3, rgb);
        cv::putText(m, text, cv::Point(x, y), cv::FONT_HERSHEY_SIMPLEX, scale, rgbColour(r, g, b), 1, cv::LINE_AA);
        return LUMEN_CV_OK;
    } catch (const std::exception &) {
        return LUMEN_CV_INTERNAL;
    }
}

extern "C" int lumen_cv_text_width(const char *text, double scale) {
    if (text == nullptr || !(scale > 0)) return 0;
    try {
        int baseline = 0;
        return cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &baseline).width;
    } catch (const std::exception &) {
        return 0;
    }
}

extern "C" int lumen_cv_encode_gray16(const uint16_t *pixels, int width, int height, int format, int quality,
                                      int low, int high, uint8_t *out, int64_t capacity, int64_t *size, char *err, int err_len) {
    if (pixels == nullptr || out == nullptr || size == nullptr || width <= 0 || height <= 0 || capacity <= 0 ||
        (format == 1 && high <= low))
        return fail(LUMEN_CV_ARGUMENT, err, err_len, "bad image size, window or pointer");
    try {
        cv::Mat m(height, width, CV_16UC1, const_cast<uint16_t *>(pixels));
        std::vector<uchar> buffer;
        bool ok;
        if (format == 1) {
            // The window low…high maps linearly onto 0…255; outside it clips.
            cv::Mat eight;
            const double scale = 255.0 / (double)(high - low);
            m.convertTo(eight, CV_8U, scale, -(double)low * scale);
            ok = cv::imencode(".jpg", eight, buffer, {cv::IMWRITE_JPEG_QUALITY, std::max(1, std::min(100, quality))});
        } else if (quality == 1 && format == 0) {
            // Without parameters OpenCV takes its fast path: zlib level 1, the Sub filter on every
            // row and the RLE strategy. Naming level 1 instead gives libpng's adaptive filter
            // choice (each row tried with all five filters): 2.6 times the CPU for a 1024² 12-bit
            // frame (21 against 54 ms), and a slightly larger file.
            ok = cv::imencode(".png", m, buffer);
        } else {
            ok = cv::imencode(".png", m, buffer, {cv::IMWRITE_PNG_COMPRESSION, std::max(0, std::min(9, quality))});
        }
        if (!ok) return fail(LUMEN_CV_INTERNAL, err, err_len, "cannot encode the image");
        *size = (int64_t)buffer.size();
        if ((int64_t)buffer.size() > capacity) return fail(LUMEN_CV_CAPACITY, err, err_len, "the encoded image is larger than the buffer");
        std::memcpy(out, buffer.data(), buffer.size());
        return LUMEN_CV_OK;
    } catch (const std::exception &e) {
        return fail(LUMEN_CV_INTERNAL, err, err_len, e.what());
    }
}
