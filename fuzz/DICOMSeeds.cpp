// Writes the DICOM fuzzer's seed corpus (fuzz/corpus/dicom) with the bridge's own writer:
// small files in every syntax, bit depth and photometric the reader takes. The writer writes no
// Deflated files: xa12-deflated.dcm (4 x 4, 2 frames, the data set deflated with zlib) is kept as is.
// Compressed seeds (*-rle, *-jpll, *-jpls, *-jpeg: RLE Lossless, JPEG Lossless SV1, JPEG-LS, JPEG
// baseline) are these files put through DCMTK's dcmcrle, dcmcjpeg (default and +eb) and dcmcjpls.
// Build and run: clang++ -std=c++17 -ISources/CDCMTK/include fuzz/DICOMSeeds.cpp \
//   Sources/CDCMTK/lumen_dcm.cpp -ldcmdata -ldcmjpeg -ldcmjpls -ldcmimgle -loflog -lofstd -lz -o /tmp/seeds \
//   && /tmp/seeds fuzz/corpus/dicom
//   && for f in xa12-explicit mono1-signed xa8-implicit; do dcmcrle fuzz/corpus/dicom/$f.dcm fuzz/corpus/dicom/$f-rle.dcm; \
//      dcmcjpeg fuzz/corpus/dicom/$f.dcm fuzz/corpus/dicom/$f-jpll.dcm; dcmcjpls fuzz/corpus/dicom/$f.dcm fuzz/corpus/dicom/$f-jpls.dcm; done \
//   && dcmcjpeg +eb fuzz/corpus/dicom/xa8-implicit.dcm fuzz/corpus/dicom/xa8-implicit-jpeg.dcm
// xa12-voilut.dcm (a VOI LUT sequence) and xa12-rle-window.dcm (a SIGMOID window) add those tags
// with dcmodify -i "(0028,3010)[0].(0028,3002)=16\0\12" -i "(0028,3010)[0].(0028,3006)=0\200…\4095",
// and -i "(0028,1050)=2048" -i "(0028,1051)=1024" -i "(0028,1056)=SIGMOID".
#include "lumen_dcm.h"

#include <cstdio>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    std::string dir = argc > 1 ? argv[1] : "fuzz/corpus/dicom";
    struct Seed { const char *name; int bitsAllocated, bitsStored, signedValues, mono1, syntax, geometry, frames; };
    const Seed seeds[] = {
        {"xa12-explicit", 16, 12, 0, 0, LUMEN_DCM_EXPLICIT_LITTLE, 1, 3},
        {"xa8-implicit", 8, 8, 0, 0, LUMEN_DCM_IMPLICIT_LITTLE, 1, 2},
        {"xa16-big", 16, 16, 0, 0, LUMEN_DCM_EXPLICIT_BIG, 1, 1},
        {"mono1-signed", 16, 12, 1, 1, LUMEN_DCM_EXPLICIT_LITTLE, 0, 2},
        {"xa10-implicit", 16, 10, 0, 0, LUMEN_DCM_IMPLICIT_LITTLE, 0, 1},
    };
    for (const Seed &s : seeds) {
        lumen_dcm_write_params p{};
        p.rows = 6;
        p.columns = 8;
        p.frames = s.frames;
        p.bits_allocated = s.bitsAllocated;
        p.bits_stored = s.bitsStored;
        p.pixel_representation = s.signedValues;
        p.monochrome1 = s.mono1;
        p.sop_class = LUMEN_DCM_SOP_XA;
        p.transfer_syntax = s.syntax;
        if (s.signedValues) { p.has_rescale = 1; p.rescale_slope = -2; p.rescale_intercept = 100; }
        if (s.geometry) {
            p.has_geometry = 1; p.source_to_detector = 1020; p.source_to_patient = 700; p.pixel_spacing = 0.3;
            p.primary_angle = 30; p.secondary_angle = -15; p.has_isocenter = 1; p.isocenter[2] = 12.5;
            p.has_frame_time = 1; p.frame_time = 66.7;
        }
        std::vector<uint16_t> pixels((size_t)(p.rows * p.columns * p.frames));
        for (size_t i = 0; i < pixels.size(); i++) pixels[i] = (uint16_t)(i * 37u);
        char err[256];
        std::string path = dir + "/" + s.name + ".dcm";
        if (lumen_dcm_write(path.c_str(), &p, pixels.data(), err, sizeof err) != LUMEN_DCM_OK) {
            std::fprintf(stderr, "%s: %s\n", path.c_str(), err);
            return 1;
        }
    }
    return 0;
}
