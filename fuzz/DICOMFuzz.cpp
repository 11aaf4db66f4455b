// libFuzzer target for the DICOM loader (the DCMTK bridge), from memory: parse, inspect the
// header (inflating Deflated data sets, within a 1 MiB budget here), read the frames (every one up
// to 4096, and the last; compressed ones through DCMTK's RLE, JPEG and JPEG-LS decoders), the
// frame time vector, the VOI LUT and the private isocentre. Any input must come back as a typed
// error or a consistent header: no crash, no hang, no unbounded memory.
// DCMTK itself is the system library (not instrumented); the bridge is.
#include "lumen_dcm.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lumen_dcm *h = nullptr;
    lumen_dcm_info info;
    char err[256];
    // A small inflation budget keeps one input's cost small; the bound itself is what is tested.
    const lumen_dcm_limits limits{0, 0, 1u << 20};
    int rc = lumen_dcm_open_memory(data, size, &limits, &h, &info, err, sizeof err);
    if (rc != LUMEN_DCM_OK) {
        if (h != nullptr || rc < LUMEN_DCM_IO || rc > LUMEN_DCM_DECODE || err[0] == '\0') std::abort();
        return 0;
    }
    // An accepted header is one the Swift side can trust.
    bool ok = info.rows > 0 && info.columns > 0 && info.frames >= 1 &&
              (info.bits_allocated == 8 || info.bits_allocated == 16) && info.bits_stored >= 1 &&
              info.bits_stored <= info.bits_allocated && info.high_bit >= info.bits_stored - 1 &&
              info.high_bit < info.bits_allocated && (info.pixel_representation | 1) == 1 &&
              std::isfinite(info.rescale_slope) && info.rescale_slope != 0;
    // The pixel data were checked to hold every frame, so they bound the frame count by the input,
    // or by the inflated data for a Deflated one; compressed frames need a fragment (8 bytes or more) each.
    bool deflated = std::strcmp(info.transfer_syntax, "1.2.840.10008.1.2.1.99") == 0;
    uint64_t frameBytes = (uint64_t)info.rows * (uint64_t)info.columns * (uint64_t)(info.bits_allocated / 8);
    if (!ok) std::abort();
    if (info.compressed) {
        if (info.fragments < info.frames || 8 * (uint64_t)info.fragments > size) std::abort();
    } else if (frameBytes * (uint64_t)info.frames > (deflated ? limits.max_inflated_bytes : size)) {
        std::abort();
    }
    std::vector<int32_t> values((size_t)info.rows * (size_t)info.columns);
    const int32_t lo = info.pixel_representation ? -(1 << (info.bits_stored - 1)) : 0;
    const int64_t hi = info.pixel_representation ? (1 << (info.bits_stored - 1)) - 1 : ((int64_t)1 << info.bits_stored) - 1;
    for (int32_t k = 0; k < info.frames; k = (k == 4095 && info.frames > 4097) ? info.frames - 1 : k + 1) {
        if (lumen_dcm_frame(h, k, values.data(), (int64_t)values.size(), err, sizeof err) != LUMEN_DCM_OK) continue;
        for (int32_t v : values)
            if (v < lo || v > hi) std::abort();
    }
    if (lumen_dcm_frame(h, info.frames, values.data(), (int64_t)values.size(), err, sizeof err) != LUMEN_DCM_ARGUMENT) std::abort();
    if (info.has_frame_time_vector) {
        std::vector<double> ms((size_t)info.frames);
        lumen_dcm_frame_times(h, ms.data(), info.frames, err, sizeof err);
    }
    if (info.has_voi_lut) {
        if (info.voi_lut_entries < 1 || info.voi_lut_entries > 65536 || info.voi_lut_bits < 8 || info.voi_lut_bits > 16) std::abort();
        std::vector<uint16_t> lut((size_t)info.voi_lut_entries);
        if (lumen_dcm_voi_lut(h, lut.data(), info.voi_lut_entries, err, sizeof err) != LUMEN_DCM_OK) std::abort();
        for (uint16_t v : lut)
            if (v >= (1u << info.voi_lut_bits)) std::abort();
    }
    double iso[3];
    lumen_dcm_private_isocenter(h, iso);
    lumen_dcm_close(h);
    return 0;
}
