#include "lumen_dcm.h"

#include "dcmtk/config/osconfig.h"
#include "dcmtk/dcmdata/dcdeftag.h"
#include "dcmtk/dcmdata/dcdict.h"
#include "dcmtk/dcmdata/dcfcache.h"
#include "dcmtk/dcmdata/dcfilefo.h"
#include "dcmtk/dcmdata/dcmetinf.h"
#include "dcmtk/dcmdata/dcpixel.h"
#include "dcmtk/dcmdata/dcpixseq.h"
#include "dcmtk/dcmdata/dcpxitem.h"
#include "dcmtk/dcmdata/dcuid.h"
#include "dcmtk/dcmdata/dcvrat.h"
#include "dcmtk/dcmdata/dcvrfd.h"
#include "dcmtk/dcmdata/dccodec.h"
#include "dcmtk/dcmdata/dcrledrg.h"
#include "dcmtk/dcmdata/dcxfer.h"
#include "dcmtk/dcmjpeg/djdecode.h"
#include "dcmtk/dcmjpls/djdecode.h"
#include "dcmtk/oflog/oflog.h"

#include <fcntl.h>
#include <set>
#include <glob.h>
#include <sys/mman.h>
#include <unistd.h>
#include <sys/stat.h>
#include <zlib.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <exception>
#include <mutex>
#include <new>
#include <string>
#include <vector>

// DCMTK reads through /proc/self/fd/N of a descriptor held here: the file that was checked to be
// regular, or an anonymous memory file (bytes given in memory, or a Deflated file inflated here).
// DCMTK allocates an element's declared length before reading the value unless it can reopen the
// stream later (then values over maxReadLength stay put until asked for); its buffer stream cannot,
// so a few bytes declaring a 4 GB element would make it allocate 4 GB. A file it can reopen.
struct SourceFile {
    int fd = -1;
    ~SourceFile() { if (fd >= 0) close(fd); }
    void reset(int next) {
        if (fd >= 0) close(fd);
        fd = next;
    }
};

struct lumen_dcm {
    // Declared first, destroyed last: the data set's deferred values and the cache read from it.
    SourceFile source;
    uint64_t sourceBytes = 0;   // of the file as given (before any inflation): bounds fragment lengths
    bool inflated = false;      // a Deflated file, inflated here into `source`
    uint64_t readBytes = 0;     // of the file DCMTK reads (the inflated one, for a Deflated file)
    DcmFileFormat file;
    DcmElement *pixels = nullptr;
    DcmFileCache cache;
    lumen_dcm_info info{};
    uint32_t frameBytes = 0;
    std::vector<uint8_t> scratch;  // one frame of raw bytes
    // Compressed files: the first fragment of each frame, learnt as frames are decoded in order
    // (0 = not known yet; DCMTK then finds it from the offset table or by counting).
    std::vector<Uint32> startFragment;
    bool rle = false;
    DcmPixelSequence *sequence = nullptr;   // the encapsulated fragments, owned by `file`
    std::vector<uint16_t> voiLUT;
};

namespace {

const char *kPrivateCreator = "LUMEN 1.0";


int fail(int code, char *err, int err_len, const std::string &message) {
    if (err != nullptr && err_len > 0) std::snprintf(err, (size_t)err_len, "%s", message.c_str());
    return code;
}

void copyString(char *dst, size_t n, const char *src) {
    std::snprintf(dst, n, "%s", src == nullptr ? "" : src);
}

std::string trimmed(const char *s) {
    std::string out = s == nullptr ? "" : s;
    while (!out.empty() && (out.back() == ' ' || out.back() == '\0')) out.pop_back();
    size_t start = 0;
    while (start < out.size() && out[start] == ' ') start++;
    return out.substr(start);
}

// DCMTK on Debian loads its dictionary from files (DCM_DICT_DEFAULT_PATH), or from DCMDICTPATH when
// that is set. When neither worked (DCMDICTPATH pointing nowhere, a relocated install), load the
// packaged files ourselves so that a fresh machine works without any environment variable.
// Also silences DCMTK's own logger (every problem comes back to the caller as an error code) and
// registers the decoders of the compressed syntaxes.
std::string dictionaryProblem;
bool dictionaryReady() {
    static std::once_flag once;
    static bool ready = false;
    std::call_once(once, [] {
        OFLog::configure(OFLogger::OFF_LOG_LEVEL);
        // The decoders of the compressed syntaxes C-arms export; registered once, for the process.
        DcmRLEDecoderRegistration::registerCodecs();
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
        if (dcmDataDict.isDictionaryLoaded()) { ready = true; return; }
        std::vector<std::string> candidates;
        std::string defaults = DCM_DICT_DEFAULT_PATH;
        size_t start = 0;
        while (start <= defaults.size()) {
            size_t end = defaults.find(ENVIRONMENT_PATH_SEPARATOR, start);
            if (end == std::string::npos) end = defaults.size();
            if (end > start) candidates.push_back(defaults.substr(start, end - start));
            start = end + 1;
        }
        for (const char *pattern : {"/usr/share/libdcmtk*/dicom.dic", "/usr/local/share/dcmtk*/dicom.dic",
                                    "/usr/share/dcmtk*/dicom.dic"}) {
            glob_t g{};
            if (glob(pattern, 0, nullptr, &g) == 0)
                for (size_t i = 0; i < g.gl_pathc; i++) candidates.push_back(g.gl_pathv[i]);
            globfree(&g);
        }
        DcmDataDictionary &dict = dcmDataDict.wrlock();
        bool loaded = false;
        for (const auto &path : candidates) {
            struct stat st{};
            if (stat(path.c_str(), &st) != 0) continue;
            if (dict.loadDictionary(path.c_str(), OFFalse)) loaded = true;
        }
        dcmDataDict.wrunlock();
        ready = loaded && dcmDataDict.isDictionaryLoaded();
        if (!ready) {
            dictionaryProblem = "DCMTK's data dictionary could not be loaded (tried";
            for (const auto &p : candidates) dictionaryProblem += " " + p;
            dictionaryProblem += "; install libdcmtk17 or set DCMDICTPATH)";
        }
    });
    return ready;
}

bool isUncompressedSyntax(const std::string &uid) {
    return uid == UID_LittleEndianImplicitTransferSyntax || uid == UID_LittleEndianExplicitTransferSyntax ||
           uid == UID_BigEndianExplicitTransferSyntax || uid == UID_DeflatedExplicitVRLittleEndianTransferSyntax;
}

int sopKind(const std::string &uid) {
    if (uid == UID_XRayAngiographicImageStorage) return LUMEN_DCM_SOP_XA;
    if (uid == UID_XRayRadiofluoroscopicImageStorage) return LUMEN_DCM_SOP_RF;
    if (uid == UID_EnhancedXAImageStorage) return LUMEN_DCM_SOP_ENHANCED_XA;
    if (uid == UID_EnhancedXRFImageStorage) return LUMEN_DCM_SOP_ENHANCED_RF;
    return LUMEN_DCM_SOP_OTHER;
}

// A finite number from a tag, first at the top level, then inside sequences (the functional
// groups of enhanced multi-frame objects carry the positioner and distances there).
bool number(DcmItem *ds, const DcmTagKey &key, double &out, unsigned long pos = 0, bool searchSequences = true) {
    for (OFBool deep : {OFFalse, OFTrue}) {
        if (deep && !searchSequences) break;
        Float64 v = 0;
        if (ds->findAndGetFloat64(key, v, pos, deep).good() && std::isfinite(v)) { out = v; return true; }
        // IS and other string VRs: DCMTK's Float64 getter only takes DS/FD/FL.
        Sint32 i = 0;
        if (ds->findAndGetSint32(key, i, pos, deep).good()) { out = i; return true; }
        OFString s;
        if (ds->findAndGetOFString(key, s, pos, deep).good()) {
            std::string t = trimmed(s.c_str());
            if (!t.empty()) {
                char *end = nullptr;
                double d = std::strtod(t.c_str(), &end);
                if (end != t.c_str() && *end == '\0' && std::isfinite(d)) { out = d; return true; }
            }
        }
    }
    return false;
}

long integer(DcmItem *ds, const DcmTagKey &key, long fallback, bool &present) {
    Uint16 u = 0;
    if (ds->findAndGetUint16(key, u).good()) { present = true; return u; }
    double d = 0;
    if (number(ds, key, d, 0, false) && d == std::floor(d) && std::fabs(d) < 1e9) { present = true; return (long)d; }
    present = false;
    return fallback;
}

bool hasDICMPrefix(const uint8_t *bytes, size_t size) {
    return size >= 132 && std::memcmp(bytes + 128, "DICM", 4) == 0;
}

// A data set without preamble (old ACR-NEMA style files, some writers) starts with a group 0002
// or 0008 tag, little or big endian.
bool looksLikeBareDataSet(const uint8_t *b, size_t size) {
    if (size < 8) return false;
    bool little = (b[0] == 0x02 || b[0] == 0x08) && b[1] == 0x00;
    bool big = b[0] == 0x00 && (b[1] == 0x02 || b[1] == 0x08);
    return little || big;
}

lumen_dcm_limits effectiveLimits(const lumen_dcm_limits *given) {
    lumen_dcm_limits l{};
    if (given != nullptr) l = *given;
    if (l.max_frame_pixels <= 0) l.max_frame_pixels = 4096 * 4096;
    if (l.max_pixel_data_bytes == 0) l.max_pixel_data_bytes = 0xFFFFFFFEull;
    if (l.max_inflated_bytes == 0) l.max_inflated_bytes = 256ull << 20;
    return l;
}

const char *fileKind(mode_t mode) {
    switch (mode & S_IFMT) {
    case S_IFDIR: return "a directory";
    case S_IFIFO: return "a FIFO (named pipe)";
    case S_IFCHR: return "a character device";
    case S_IFBLK: return "a block device";
    case S_IFSOCK: return "a socket";
    default: return "not a regular file";
    }
}

bool preadAll(int fd, uint8_t *buf, size_t n, uint64_t offset, size_t &got) {
    got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)(offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return false;
        if (r == 0) break;
        got += (size_t)r;
    }
    return true;
}

uint16_t le16(const uint8_t *b) { return (uint16_t)(b[0] | (b[1] << 8)); }
uint32_t le32(const uint8_t *b) { return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24); }

// The file meta information as far as the Deflated syntax concerns us. DCMTK would inflate a
// Deflated data set whole, into memory, with no bound: such files are recognised here first.
struct MetaSniff {
    bool deflated = false;
    uint64_t dataOffset = 0;                    // where the (deflated) data set starts
    std::vector<uint8_t> keptElements;          // meta elements but the group length and the syntax
};

// Meta groups are a few hundred bytes; one that does not end within this is refused if it names
// the Deflated syntax (and left to DCMTK's own checks otherwise).
constexpr size_t kMetaWindow = 64 * 1024;
const char *kDeflatedUID = UID_DeflatedExplicitVRLittleEndianTransferSyntax;

int sniffMeta(int fd, uint64_t size, MetaSniff &out, std::string &message) {
    std::vector<uint8_t> b((size_t)std::min<uint64_t>(size, kMetaWindow));
    size_t got = 0;
    if (!preadAll(fd, b.data(), b.size(), 0, got)) {
        message = std::string("cannot read: ") + std::strerror(errno);
        return LUMEN_DCM_IO;
    }
    b.resize(got);
    // DCMTK makes sense of more meta groups than the walk below (big endian ones, say): whenever the
    // walk finds no transfer syntax, a header that names the Deflated one anywhere is refused.
    const bool mentionsDeflated = std::string(b.begin(), b.end()).find(kDeflatedUID) != std::string::npos;
    auto unparsed = [&]() {
        if (!mentionsDeflated) return (int)LUMEN_DCM_OK;
        message = "file meta information naming the Deflated transfer syntax in a form not read here: refused rather than inflated blindly";
        return (int)LUMEN_DCM_CORRUPT;
    };
    size_t pos;
    if (hasDICMPrefix(b.data(), b.size())) pos = 132;
    else if (b.size() >= 2 && b[0] == 0x02 && b[1] == 0x00) pos = 0;   // a meta group without preamble
    else return unparsed();
    bool parsed = false, explicitVR = true;
    std::string syntax;
    std::vector<uint8_t> kept;
    std::set<uint16_t> seen;
    while (true) {
        if (pos + 8 > b.size()) { parsed = pos == b.size() && got == size; break; }
        if (le16(&b[pos]) != 0x0002) { parsed = true; break; }
        uint16_t element = le16(&b[pos + 2]);
        char v0 = (char)b[pos + 4], v1 = (char)b[pos + 5];
        bool hasVR = v0 >= 'A' && v0 <= 'Z' && v1 >= 'A' && v1 <= 'Z';
        size_t header = 8;
        uint64_t length;
        if (!hasVR) {
            explicitVR = false;
            length = le32(&b[pos + 4]);
        } else {
            std::string vr{v0, v1};
            bool longForm = vr == "OB" || vr == "OW" || vr == "OF" || vr == "SQ" || vr == "UT" || vr == "UN" ||
                            vr == "UC" || vr == "UR" || vr == "OD" || vr == "OL" || vr == "OV" || vr == "SV" || vr == "UV";
            if (longForm) {
                if (pos + 12 > b.size()) break;
                header = 12;
                length = le32(&b[pos + 8]);
            } else {
                length = le16(&b[pos + 6]);
            }
        }
        if (length == 0xFFFFFFFFu || pos + header + length > b.size()) break;
        // A repeated element makes the group mean two things: DCMTK keeps the first transfer
        // syntax where this walk would keep the last, and a Deflated data set DCMTK inflates
        // itself is read without deferring its large values (an 800 MB allocation from a few
        // hundred bytes). The standard allows each element once.
        if (!seen.insert(element).second) {
            char tag[16];
            std::snprintf(tag, sizeof tag, "(0002,%04X)", element);
            message = std::string("file meta information with element ") + tag + " twice: refused, as it may be read two ways";
            return LUMEN_DCM_CORRUPT;
        }
        if (element == 0x0010) syntax = trimmed(std::string((const char *)&b[pos + header], (size_t)length).c_str());
        else if (element != 0x0000) kept.insert(kept.end(), b.begin() + (long)pos, b.begin() + (long)(pos + header + length));
        pos += header + (size_t)length;
    }
    if (!parsed || syntax.empty()) return unparsed();
    if (syntax != kDeflatedUID) return LUMEN_DCM_OK;
    if (!explicitVR) {
        message = "file meta information in implicit VR with the Deflated transfer syntax (the meta group must be explicit VR)";
        return LUMEN_DCM_CORRUPT;
    }
    out.deflated = true;
    out.dataOffset = pos;
    out.keptElements = std::move(kept);
    return LUMEN_DCM_OK;
}

void put16(std::vector<uint8_t> &v, uint16_t x) { v.push_back((uint8_t)x); v.push_back((uint8_t)(x >> 8)); }
void put32(std::vector<uint8_t> &v, uint32_t x) { put16(v, (uint16_t)x); put16(v, (uint16_t)(x >> 16)); }

bool writeAll(int fd, const uint8_t *p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

// Inflates the data set of a Deflated file (raw deflate, RFC 1951, as PS3.5 A.5 specifies) into a
// memory file, behind a rewritten meta group that says Explicit VR Little Endian, and makes that the
// handle's source. The output is counted as it is produced: past `limit` bytes inflation stops,
// so memory never holds more than the limit whatever the ratio.
int inflateDataSet(lumen_dcm *h, const MetaSniff &sniff, uint64_t limit, lumen_dcm_info &info, std::string &message) {
    int out = memfd_create("lumen-dicom-inflated", MFD_CLOEXEC);
    if (out < 0) {
        message = std::string("cannot create a memory file: ") + std::strerror(errno);
        return LUMEN_DCM_INTERNAL;
    }
    SourceFile inflated;
    inflated.fd = out;
    std::vector<uint8_t> head(128, 0);
    head.insert(head.end(), {'D', 'I', 'C', 'M'});
    std::vector<uint8_t> meta = sniff.keptElements;
    const std::string explicitLE = UID_LittleEndianExplicitTransferSyntax;   // 19 characters, padded to 20
    put16(meta, 0x0002); put16(meta, 0x0010); meta.push_back('U'); meta.push_back('I'); put16(meta, 20);
    meta.insert(meta.end(), explicitLE.begin(), explicitLE.end());
    meta.push_back(0);
    put16(head, 0x0002); put16(head, 0x0000); head.push_back('U'); head.push_back('L'); put16(head, 4); put32(head, (uint32_t)meta.size());
    head.insert(head.end(), meta.begin(), meta.end());
    if (!writeAll(out, head.data(), head.size())) {
        message = std::string("cannot fill a memory file: ") + std::strerror(errno);
        return LUMEN_DCM_INTERNAL;
    }

    z_stream z{};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK) {
        message = "zlib could not start inflating";
        return LUMEN_DCM_INTERNAL;
    }
    std::vector<uint8_t> in(64 * 1024), chunk(256 * 1024);
    uint64_t offset = sniff.dataOffset, total = 0;
    int rc = LUMEN_DCM_OK;
    bool ended = false, inputLeft = true;
    while (!ended && rc == LUMEN_DCM_OK) {
        if (z.avail_in == 0 && inputLeft) {
            size_t got = 0;
            if (!preadAll(h->source.fd, in.data(), in.size(), offset, got)) {
                message = std::string("cannot read: ") + std::strerror(errno);
                rc = LUMEN_DCM_IO;
                break;
            }
            offset += got;
            inputLeft = got == in.size();
            z.next_in = in.data();
            z.avail_in = (uInt)got;
        }
        z.next_out = chunk.data();
        z.avail_out = (uInt)chunk.size();
        int zr = inflate(&z, Z_NO_FLUSH);
        size_t produced = chunk.size() - z.avail_out;
        if (total + produced > limit) {
            message = "the Deflated data set inflates to more than " + std::to_string(limit) + " bytes (from a file of " +
                      std::to_string(h->sourceBytes) + "), over the budget for inflated data (" + std::to_string(limit) +
                      " bytes); inflation was stopped there";
            copyString(info.budget_what, sizeof info.budget_what, "inflated data set");
            info.budget_size = total + produced;
            info.budget_limit = limit;
            rc = LUMEN_DCM_OVER_BUDGET;
            break;
        }
        if (produced > 0 && !writeAll(out, chunk.data(), produced)) {
            message = std::string("cannot fill a memory file: ") + std::strerror(errno);
            rc = LUMEN_DCM_INTERNAL;
            break;
        }
        total += produced;
        if (zr == Z_STREAM_END) ended = true;
        else if (zr == Z_BUF_ERROR && z.avail_in == 0 && !inputLeft) {
            message = "truncated: the Deflated data set ends inside its deflate stream";
            rc = LUMEN_DCM_TRUNCATED;
        } else if (zr != Z_OK && zr != Z_BUF_ERROR) {
            message = std::string("corrupt deflate stream: ") + (z.msg != nullptr ? std::string(z.msg) : "zlib error " + std::to_string(zr));
            rc = LUMEN_DCM_CORRUPT;
        }
    }
    inflateEnd(&z);
    if (rc != LUMEN_DCM_OK) return rc;
    h->source.reset(inflated.fd);
    inflated.fd = -1;
    h->inflated = true;
    return LUMEN_DCM_OK;
}

// Classifies a failed parse: a premature end is a truncation; otherwise a file that never said
// it was DICOM is "not DICOM", and one that did is corrupt.
int loadFailure(const OFCondition &c, bool prefixed, std::string &message) {
    std::string text = c.text();
    bool premature = c == EC_StreamNotifyClient || c == EC_EndOfStream || c == EC_InvalidStream ||
                     text.find("premature") != std::string::npos || text.find("Premature") != std::string::npos;
    if (!prefixed) {
        message = "not a DICOM file (no DICM prefix and no readable data set: " + text + ")";
        return LUMEN_DCM_NOT_DICOM;
    }
    if (premature) {
        message = "truncated: the data end inside an element (" + text + ")";
        return LUMEN_DCM_TRUNCATED;
    }
    message = "corrupt data set: " + text;
    return LUMEN_DCM_CORRUPT;
}

// Encapsulated pixel data (compressed syntaxes) are never decoded here, but their fragment lengths
// are still held against the file that contains them before anything else looks at them.
int checkEncapsulated(DcmDataset *ds, uint64_t fileBytes, std::string &message) {
    DcmElement *e = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, e).bad() || e == nullptr) return LUMEN_DCM_OK;
    auto *pixelData = dynamic_cast<DcmPixelData *>(e);
    DcmPixelSequence *sequence = nullptr;
    if (pixelData == nullptr || pixelData->getEncapsulatedRepresentation(ds->getOriginalXfer(), nullptr, sequence).bad() ||
        sequence == nullptr)
        return LUMEN_DCM_OK;
    uint64_t total = 0;
    for (unsigned long i = 0; i < sequence->card(); i++) {
        DcmPixelItem *item = nullptr;
        if (sequence->getItem(item, i).bad() || item == nullptr) continue;
        uint64_t length = item->getLength();
        total += length;
        if (length > fileBytes || total > fileBytes) {
            message = "encapsulated pixel data: fragment " + std::to_string(i) + " declares " + std::to_string(length) +
                      " bytes (" + std::to_string(total) + " so far) in a file of " + std::to_string(fileBytes);
            return LUMEN_DCM_CORRUPT;
        }
    }
    return LUMEN_DCM_OK;
}

// Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil).
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

bool digits(const std::string &s, size_t at, size_t n, int &out) {
    if (at + n > s.size()) return false;
    out = 0;
    for (size_t i = at; i < at + n; i++) {
        if (s[i] < '0' || s[i] > '9') return false;
        out = out * 10 + (s[i] - '0');
    }
    return true;
}

// A DA (YYYYMMDD, may be empty: then day 0) and a TM (HH[MM[SS[.F{1,6}]]]) as seconds since
// 1970-01-01; false when either is malformed.
bool dateTimeSeconds(const std::string &date, const std::string &time, double &out) {
    double days = 0;
    if (!date.empty()) {
        int y, m, d;
        if (!digits(date, 0, 4, y) || !digits(date, 4, 2, m) || !digits(date, 6, 2, d) || m < 1 || m > 12 || d < 1 || d > 31) return false;
        days = (double)daysFromCivil(y, (unsigned)m, (unsigned)d);
    }
    int hh = 0, mm = 0, ss = 0;
    if (!digits(time, 0, 2, hh) || hh > 23) return false;
    size_t at = 2;
    if (time.size() > at && time[at] == ':') at++;   // ACR-NEMA style HH:MM:SS
    if (time.size() >= at + 2 && time[at] != '.') {
        if (!digits(time, at, 2, mm) || mm > 59) return false;
        at += 2;
        if (time.size() > at && time[at] == ':') at++;
        if (time.size() >= at + 2 && time[at] != '.') {
            if (!digits(time, at, 2, ss) || ss > 60) return false;
            at += 2;
        }
    }
    double fraction = 0;
    if (time.size() > at && time[at] == '.') {
        double scale = 0.1;
        for (size_t i = at + 1; i < time.size() && i < at + 7; i++) {
            if (time[i] < '0' || time[i] > '9') break;
            fraction += (time[i] - '0') * scale;
            scale /= 10;
        }
    }
    out = days * 86400.0 + hh * 3600.0 + mm * 60.0 + ss + fraction;
    return true;
}

std::string stringOf(DcmItem *ds, const DcmTagKey &key) {
    OFString s;
    return ds->findAndGetOFString(key, s).good() ? trimmed(s.c_str()) : std::string();
}

// The VOI (first window, first LUT of the VOI LUT sequence), the intensity relationship, pixel
// spacing, magnification, and what orders single-frame files of a series.
void readPresentation(DcmItem *ds, lumen_dcm_info &info, std::vector<uint16_t> &lut, long frames) {
    (void)frames;
    double center = 0, width = 0;
    if (number(ds, DCM_WindowCenter, center, 0) && number(ds, DCM_WindowWidth, width, 0)) {
        info.has_window = 1;
        info.window_center = center;
        info.window_width = width;
    }
    std::string function = stringOf(ds, DCM_VOILUTFunction);
    copyString(info.voi_lut_function, sizeof info.voi_lut_function, function.empty() ? "LINEAR" : function.c_str());
    DcmItem *item = nullptr;
    if (ds->findAndGetSequenceItem(DCM_VOILUTSequence, item, 0).good() && item != nullptr) {
        Uint16 d0 = 0, d1 = 0, d2 = 0;
        DcmElement *data = nullptr;
        if (item->findAndGetUint16(DCM_LUTDescriptor, d0, 0).good() && item->findAndGetUint16(DCM_LUTDescriptor, d1, 1).good() &&
            item->findAndGetUint16(DCM_LUTDescriptor, d2, 2).good() && d2 >= 8 && d2 <= 16 &&
            item->findAndGetElement(DCM_LUTData, data).good() && data != nullptr) {
            int32_t entries = d0 == 0 ? 65536 : d0;
            // The first mapped value is US or SS: signed when the pixels are.
            int32_t first = info.pixel_representation == 1 ? (int32_t)(int16_t)d1 : (int32_t)d1;
            uint32_t length = data->getLength();
            std::vector<uint16_t> values((size_t)entries);
            bool ok = false;
            if (length >= 2u * (uint32_t)entries) {
                Uint16 *words = nullptr;
                ok = data->getUint16Array(words).good() && words != nullptr;
                if (ok) for (int32_t i = 0; i < entries; i++) values[(size_t)i] = words[i];
            } else if (d2 == 8 && length >= (uint32_t)entries) {
                // 8-bit entries packed two to a word (PS3.3 C.11.2.1.1 allows it for OW).
                Uint8 *bytes = nullptr;
                ok = data->getUint8Array(bytes).good() && bytes != nullptr;
                if (ok) for (int32_t i = 0; i < entries; i++) values[(size_t)i] = bytes[i];
            }
            if (ok) {
                const uint32_t top = (1u << d2) - 1u;
                for (uint16_t &v : values) v = (uint16_t)std::min<uint32_t>(v, top);
                info.has_voi_lut = 1;
                info.voi_lut_entries = entries;
                info.voi_lut_first = first;
                info.voi_lut_bits = d2;
                lut = std::move(values);
            }
        }
    }
    info.has_modality_lut_sequence = ds->tagExists(DCM_ModalityLUTSequence) ? 1 : 0;
    if (number(ds, DCM_PixelSpacing, info.pixel_spacing[0], 0)) {
        info.has_pixel_spacing = 1;
        if (!number(ds, DCM_PixelSpacing, info.pixel_spacing[1], 1)) info.pixel_spacing[1] = info.pixel_spacing[0];
    }
    info.has_magnification = number(ds, DCM_EstimatedRadiographicMagnificationFactor, info.magnification);
    copyString(info.pixel_intensity_relationship, sizeof info.pixel_intensity_relationship,
               stringOf(ds, DCM_PixelIntensityRelationship).c_str());
    double sign = 0;
    if (number(ds, DCM_PixelIntensityRelationshipSign, sign, 0, false) && (sign == 1 || sign == -1)) {
        info.has_intensity_sign = 1;
        info.intensity_sign = (int32_t)sign;
    }
    copyString(info.series_uid, sizeof info.series_uid, stringOf(ds, DCM_SeriesInstanceUID).c_str());
    double instance = 0;
    if (number(ds, DCM_InstanceNumber, instance, 0, false) && instance == std::floor(instance) && std::fabs(instance) < 2e9) {
        info.has_instance_number = 1;
        info.instance_number = (int32_t)instance;
    }
    double t = 0;
    std::string dt = stringOf(ds, DCM_AcquisitionDateTime);
    bool timed = dt.size() >= 10 && dateTimeSeconds(dt.substr(0, 8), dt.substr(8), t);
    if (!timed) {
        std::string time = stringOf(ds, DCM_AcquisitionTime);
        if (!time.empty()) timed = dateTimeSeconds(stringOf(ds, DCM_AcquisitionDate), time, t);
    }
    if (!timed) {
        std::string time = stringOf(ds, DCM_ContentTime);
        if (!time.empty()) timed = dateTimeSeconds(stringOf(ds, DCM_ContentDate), time, t);
    }
    if (timed) {
        info.has_acquisition_time = 1;
        info.acquisition_time = t;
    }
}

// DCMTK 3.6.7 (this system's) walks a JPEG fragment's markers to find its bit depth before it
// decodes, and never steps past a TEM marker (0xFF01): one such marker hangs the decoder for ever
// (DCMTK bug #1190, fixed upstream after 3.6.7). This is the same walk, over every fragment, so a
// stream that would hang is refused at open instead. A valid header reaches its SOF before any
// TEM: real encoders do not write one there. The fragment is read in windows, never all at once.
int checkJPEGMarkerWalk(lumen_dcm *h, DcmPixelSequence *sequence, unsigned long items, std::string &message) {
    std::vector<uint8_t> window(4096);
    for (unsigned long i = 1; i < items; i++) {
        DcmPixelItem *item = nullptr;
        if (sequence->getItem(item, i).bad() || item == nullptr) {
            message = "cannot read compressed fragment " + std::to_string(i);
            return LUMEN_DCM_CORRUPT;
        }
        const uint32_t length = item->getLength();
        uint32_t windowStart = 0, windowBytes = 0;
        // The four bytes at `offset` (DCMTK reads at most offset + 4 < length).
        auto load = [&](uint64_t offset) {
            if (offset >= windowStart && offset + 4 <= (uint64_t)windowStart + windowBytes) return true;
            windowStart = (uint32_t)offset;
            windowBytes = (uint32_t)std::min<uint64_t>(window.size(), length - offset);
            return item->getPartialValue(window.data(), windowStart, windowBytes, &h->cache, EBO_LittleEndian).good();
        };
        uint64_t offset = 0;   // wider than DCMTK's, so a huge segment length cannot wrap it
        while (offset + 4 < length) {
            if (!load(offset)) {
                message = "cannot read compressed fragment " + std::to_string(i);
                return LUMEN_DCM_CORRUPT;
            }
            const uint8_t *at = window.data() + (offset - windowStart);
            const uint16_t marker = (uint16_t)(at[0] << 8 | at[1]);
            const uint16_t segment = (uint16_t)(at[2] << 8 | at[3]);
            if (marker == 0xFF01) {
                message = "JPEG fragment " + std::to_string(i) + " has a TEM marker (0xFF01) at byte " + std::to_string(offset) +
                          " before its frame header, which this system's DCMTK cannot scan";
                return LUMEN_DCM_DECODE;
            }
            const bool frameHeader = marker >= 0xFFC0 && marker <= 0xFFCF && marker != 0xFFC4 && marker != 0xFFC8 && marker != 0xFFCC;
            if (frameHeader) break;                                              // DCMTK stops here
            if ((marker >= 0xFFD0 && marker <= 0xFFD9) || (marker >= 0xFF03 && marker <= 0xFFBF)) offset += 2;  // RSTn, SOI, EOI, RES
            else if (marker == 0xFFFF) offset += 1;                              // a fill byte
            else if (marker >= 0xFFC4) offset += (uint32_t)segment + 2;         // a segment with its length
            else break;                                                          // not a marker: DCMTK gives up
        }
    }
    return LUMEN_DCM_OK;
}

// Everything after a successful parse: syntax, image pixel module, geometry, pixel data size.
int inspect(lumen_dcm *h, bool prefixed, const lumen_dcm_limits &limits, std::string &message) {
    DcmDataset *ds = h->file.getDataset();
    DcmMetaInfo *meta = h->file.getMetaInfo();
    lumen_dcm_info &info = h->info;
    info = lumen_dcm_info{};

    OFString syntaxUID;
    if (meta != nullptr) meta->findAndGetOFString(DCM_TransferSyntaxUID, syntaxUID);
    std::string uid = trimmed(syntaxUID.c_str());
    if (uid.empty()) uid = DcmXfer(ds->getOriginalXfer()).getXferID();
    // An inflated file says Explicit VR Little Endian in the meta group it was given here.
    if (h->inflated) uid = kDeflatedUID;
    DcmXfer xfer(uid.c_str());
    copyString(info.transfer_syntax, sizeof info.transfer_syntax, uid.c_str());
    const char *name = xfer.getXfer() == EXS_Unknown ? "unknown transfer syntax" : xfer.getXferName();
    copyString(info.transfer_syntax_name, sizeof info.transfer_syntax_name, name);

    bool hasRows = ds->tagExists(DCM_Rows), hasPixels = ds->tagExists(DCM_PixelData);
    if (!prefixed && !hasRows && !hasPixels) {
        message = "not a DICOM image (no DICM prefix, no Rows and no PixelData)";
        return LUMEN_DCM_NOT_DICOM;
    }
    if (!h->inflated && ds->getOriginalXfer() == EXS_DeflatedLittleEndianExplicit) {
        // Only reachable if the meta group fooled the check before loading: never trust it.
        message = "a Deflated data set inflated outside the bounded path";
        return LUMEN_DCM_CORRUPT;
    }

    OFString sop;
    if (ds->findAndGetOFString(DCM_SOPClassUID, sop).bad() && meta != nullptr)
        meta->findAndGetOFString(DCM_MediaStorageSOPClassUID, sop);
    std::string sopUID = trimmed(sop.c_str());
    copyString(info.sop_class_uid, sizeof info.sop_class_uid, sopUID.c_str());
    info.sop_class = sopKind(sopUID);
    OFString position;
    ds->findAndGetOFString(DCM_PatientPosition, position);
    copyString(info.patient_position, sizeof info.patient_position, trimmed(position.c_str()).c_str());

    // Image pixel module.
    bool present = false;
    long samples = integer(ds, DCM_SamplesPerPixel, 1, present);
    OFString photometric;
    std::string pi = ds->findAndGetOFString(DCM_PhotometricInterpretation, photometric).good()
                         ? trimmed(photometric.c_str()) : std::string("MONOCHROME2");
    if (pi == "MONOCHROME1") info.monochrome1 = 1;
    else if (pi == "MONOCHROME2") info.monochrome1 = 0;
    else {
        message = "unsupported photometric interpretation '" + pi + "' (only MONOCHROME1/MONOCHROME2)";
        return LUMEN_DCM_UNSUPPORTED_PHOTOMETRIC;
    }
    if (samples != 1) {
        message = "unsupported samples per pixel " + std::to_string(samples) + " (only 1, greyscale)";
        return LUMEN_DCM_UNSUPPORTED_PHOTOMETRIC;
    }
    long rows = integer(ds, DCM_Rows, 0, present);
    long columns = integer(ds, DCM_Columns, 0, present);
    if (rows <= 0 || columns <= 0) {
        message = "missing or zero Rows/Columns (" + std::to_string(rows) + " x " + std::to_string(columns) + ")";
        return LUMEN_DCM_MISSING;
    }
    if ((int64_t)rows * columns > limits.max_frame_pixels) {
        message = "frames of " + std::to_string(columns) + " x " + std::to_string(rows) + " pixels are over the frame budget of " +
                  std::to_string(limits.max_frame_pixels) + " pixels; refused before decoding";
        copyString(info.budget_what, sizeof info.budget_what, "frame pixels");
        info.budget_size = (uint64_t)rows * (uint64_t)columns;
        info.budget_limit = (uint64_t)limits.max_frame_pixels;
        return LUMEN_DCM_OVER_BUDGET;
    }
    long allocated = integer(ds, DCM_BitsAllocated, 0, present);
    if (!present) { message = "missing BitsAllocated"; return LUMEN_DCM_MISSING; }
    long stored = integer(ds, DCM_BitsStored, allocated, present);
    long high = integer(ds, DCM_HighBit, stored - 1, present);
    long representation = integer(ds, DCM_PixelRepresentation, 0, present);
    if ((allocated != 8 && allocated != 16) || stored < 1 || stored > allocated || high < stored - 1 || high >= allocated) {
        message = "unsupported bits: allocated " + std::to_string(allocated) + ", stored " + std::to_string(stored) +
                  ", high bit " + std::to_string(high) + " (need 8 or 16 allocated, 1…allocated stored)";
        return LUMEN_DCM_UNSUPPORTED_BITS;
    }
    if (representation != 0 && representation != 1) {
        message = "invalid PixelRepresentation " + std::to_string(representation);
        return LUMEN_DCM_CORRUPT;
    }
    long frames = 1;
    if (ds->tagExists(DCM_NumberOfFrames)) {
        double f = 0;
        if (!number(ds, DCM_NumberOfFrames, f, 0, false) || f < 1 || f != std::floor(f) || f > 1e6) {
            OFString raw;
            ds->findAndGetOFString(DCM_NumberOfFrames, raw);
            message = std::string("invalid NumberOfFrames '") + raw.c_str() + "'";
            return LUMEN_DCM_CORRUPT;
        }
        frames = (long)f;
    }
    uint64_t pixelBytes = 0;
    bool overflow = __builtin_mul_overflow((uint64_t)rows * (uint64_t)columns, (uint64_t)frames * (uint64_t)(allocated / 8), &pixelBytes);
    if (overflow || pixelBytes > limits.max_pixel_data_bytes) {
        if (overflow) pixelBytes = UINT64_MAX;
        message = std::to_string(frames) + " frame(s) of " + std::to_string(columns) + " x " + std::to_string(rows) + " at " +
                  std::to_string(allocated) + " bits make " + std::to_string(pixelBytes) + " bytes of pixel data, over the budget of " +
                  std::to_string(limits.max_pixel_data_bytes) + "; refused before decoding";
        copyString(info.budget_what, sizeof info.budget_what, "pixel data bytes");
        info.budget_size = pixelBytes;
        info.budget_limit = limits.max_pixel_data_bytes;
        return LUMEN_DCM_OVER_BUDGET;
    }
    if (int rc = checkEncapsulated(ds, h->readBytes, message); rc != LUMEN_DCM_OK) return rc;
    bool compressed = false;
    if (!isUncompressedSyntax(uid)) {
        // Encapsulated syntaxes are read where one of DCMTK's registered decoders takes them:
        // RLE Lossless, JPEG (lossless and lossy processes), JPEG-LS. Not JPEG 2000, MPEG, HEVC.
        E_TransferSyntax xs = xfer.getXfer();
        if (xs == EXS_Unknown || !xfer.isEncapsulated() || !DcmCodecList::canChangeCoding(xs, EXS_LittleEndianExplicit)) {
            message = std::string("unsupported transfer syntax ") + name + " (" + uid +
                      "): read are the uncompressed syntaxes, Deflated, RLE Lossless, JPEG (lossless and baseline/extended) and JPEG-LS";
            return LUMEN_DCM_UNSUPPORTED_SYNTAX;
        }
        compressed = true;
        info.compressed = 1;
        OFString lossyFlag;
        info.lossy = xfer.isLossy() || (ds->findAndGetOFString(DCM_LossyImageCompression, lossyFlag).good() &&
                                         trimmed(lossyFlag.c_str()) == "01");
    }
    info.rows = (int32_t)rows;
    info.columns = (int32_t)columns;
    info.frames = (int32_t)frames;
    info.bits_allocated = (int32_t)allocated;
    info.bits_stored = (int32_t)stored;
    info.high_bit = (int32_t)high;
    info.pixel_representation = (int32_t)representation;

    // Modality LUT (rescale).
    info.rescale_slope = 1;
    info.rescale_intercept = 0;
    double slope = 1, intercept = 0;
    bool hasSlope = number(ds, DCM_RescaleSlope, slope), hasIntercept = number(ds, DCM_RescaleIntercept, intercept);
    if (hasSlope || hasIntercept) {
        if (!(slope != 0)) {
            message = "RescaleSlope is 0";
            return LUMEN_DCM_CORRUPT;
        }
        info.has_rescale = 1;
        info.rescale_slope = slope;
        info.rescale_intercept = intercept;
    }

    readPresentation(ds, info, h->voiLUT, frames);

    // Geometry and timing.
    info.has_source_to_detector = number(ds, DCM_DistanceSourceToDetector, info.source_to_detector);
    info.has_source_to_patient = number(ds, DCM_DistanceSourceToPatient, info.source_to_patient);
    if (number(ds, DCM_ImagerPixelSpacing, info.imager_pixel_spacing[0], 0)) {
        info.has_imager_pixel_spacing = 1;
        if (!number(ds, DCM_ImagerPixelSpacing, info.imager_pixel_spacing[1], 1))
            info.imager_pixel_spacing[1] = info.imager_pixel_spacing[0];
    }
    info.has_primary_angle = number(ds, DCM_PositionerPrimaryAngle, info.primary_angle);
    info.has_secondary_angle = number(ds, DCM_PositionerSecondaryAngle, info.secondary_angle);
    info.has_frame_time = number(ds, DCM_FrameTime, info.frame_time);
    info.has_cine_rate = number(ds, DCM_CineRate, info.cine_rate);
    DcmElement *vector = nullptr;
    if (ds->findAndGetElement(DCM_FrameTimeVector, vector).good() && vector != nullptr &&
        vector->getVM() == (unsigned long)frames) {
        bool finite = true;
        for (long i = 0; i < frames && finite; i++) {
            Float64 v = 0;
            finite = vector->getFloat64(v, (unsigned long)i).good() && std::isfinite(v) && v >= 0;
        }
        info.has_frame_time_vector = finite;
    }

    // Pixel data: native, long enough for every frame.
    DcmElement *pixels = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, pixels).bad() || pixels == nullptr) {
        message = "no PixelData (7FE0,0010)";
        return LUMEN_DCM_MISSING;
    }
    uint64_t frameBytes = (uint64_t)rows * (uint64_t)columns * (uint64_t)(allocated / 8);
    if (compressed) {
        auto *pixelData = dynamic_cast<DcmPixelData *>(pixels);
        DcmPixelSequence *sequence = nullptr;
        if (pixelData == nullptr || pixelData->getEncapsulatedRepresentation(ds->getOriginalXfer(), nullptr, sequence).bad() ||
            sequence == nullptr) {
            message = std::string("PixelData not encapsulated, although the transfer syntax ") + name + " says it is";
            return LUMEN_DCM_CORRUPT;
        }
        // Every frame has at least one fragment (PS3.5 A.4): this bounds the frame count by the
        // file, so a few bytes cannot ask for a million decodes.
        unsigned long items = sequence->card();
        if (items < 1 + (unsigned long)frames) {
            message = std::to_string(frames) + " frame(s) but " + std::to_string(items > 0 ? items - 1 : 0) +
                      " compressed fragment(s) after the offset table";
            return LUMEN_DCM_CORRUPT;
        }
        Uint32 decodedBytes = 0;
        if (pixelData->getUncompressedFrameSize(ds, decodedBytes).bad() || decodedBytes < frameBytes) {
            message = "cannot size a decoded frame";
            return LUMEN_DCM_CORRUPT;
        }
        // RLE frames are one fragment each (PS3.5 A.4.2). DCMTK's RLE decoder reads past a fragment
        // when a frame's segments span several, so any other layout is refused here.
        if (xfer.getXfer() == EXS_RLELossless && items - 1 != (unsigned long)frames) {
            message = "RLE Lossless with " + std::to_string(items - 1) + " fragments for " + std::to_string(frames) +
                      " frame(s): each frame must be one fragment (PS3.5 A.4.2)";
            return LUMEN_DCM_CORRUPT;
        }
        if (xfer.getXfer() >= EXS_JPEGProcess1 && xfer.getXfer() <= EXS_JPEGProcess14SV1) {
            if (int rc = checkJPEGMarkerWalk(h, sequence, items, message); rc != LUMEN_DCM_OK) return rc;
        }
        info.fragments = (int32_t)std::min<unsigned long>(items - 1, 0x7FFFFFFF);
        h->rle = xfer.getXfer() == EXS_RLELossless;
        h->sequence = sequence;
        h->pixels = pixels;
        // DCMTK wants an even buffer (it may swap 16-bit words in place).
        h->frameBytes = (uint32_t)((frameBytes + 1) & ~(uint64_t)1);
        h->startFragment.assign((size_t)frames, 0);
        return LUMEN_DCM_OK;
    }
    if (pixels->getLengthField() == DCM_UndefinedLength || pixels->isNested()) {
        message = "encapsulated PixelData in an uncompressed transfer syntax";
        return LUMEN_DCM_CORRUPT;
    }
    uint64_t need = frameBytes * (uint64_t)frames;
    uint64_t have = pixels->getLength();
    if (have < need) {
        message = "truncated pixel data: " + std::to_string(have) + " bytes, but " + std::to_string(frames) +
                  " frame(s) of " + std::to_string(columns) + " x " + std::to_string(rows) + " at " +
                  std::to_string(allocated) + " bits need " + std::to_string(need);
        return LUMEN_DCM_TRUNCATED;
    }
    h->pixels = pixels;
    h->frameBytes = (uint32_t)frameBytes;
    return LUMEN_DCM_OK;
}

// `prefixed`: the file says it is DICOM (a DICM prefix, or a plausible bare data set).
int finishOpen(lumen_dcm *h, const OFCondition &c, bool prefixed, const lumen_dcm_limits &limits, lumen_dcm **out,
               lumen_dcm_info *info, char *err, int err_len) {
    std::string message;
    int rc = c.good() ? inspect(h, prefixed, limits, message) : loadFailure(c, prefixed, message);
    if (info != nullptr) *info = h->info;   // on failure: what was learnt (the transfer syntax, say)
    if (rc != LUMEN_DCM_OK) {
        delete h;
        return fail(rc, err, err_len, message);
    }
    *out = h;
    return LUMEN_DCM_OK;
}

// Loads the regular file (or memory file) `h->source`: a Deflated one is inflated first, bounded.
int openSource(lumen_dcm *h, const lumen_dcm_limits &limits, lumen_dcm **out, lumen_dcm_info *info, char *err, int err_len) {
    auto refuse = [&](int rc, const std::string &message) {
        if (info != nullptr) *info = h->info;
        delete h;
        return fail(rc, err, err_len, message);
    };
    struct stat st{};
    if (fstat(h->source.fd, &st) != 0) return refuse(LUMEN_DCM_IO, std::string("cannot read: ") + std::strerror(errno));
    h->sourceBytes = h->readBytes = (uint64_t)st.st_size;
    if (st.st_size == 0) return refuse(LUMEN_DCM_NOT_DICOM, "not a DICOM file: the file is empty");
    uint8_t head[132] = {0};
    size_t got = 0;
    if (!preadAll(h->source.fd, head, sizeof head, 0, got)) return refuse(LUMEN_DCM_IO, std::string("cannot read: ") + std::strerror(errno));
    bool prefixed = hasDICMPrefix(head, got) || looksLikeBareDataSet(head, got);
    MetaSniff sniff;
    std::string message;
    int rc = sniffMeta(h->source.fd, h->sourceBytes, sniff, message);
    if (rc == LUMEN_DCM_OK && sniff.deflated) {
        copyString(h->info.transfer_syntax, sizeof h->info.transfer_syntax, kDeflatedUID);
        copyString(h->info.transfer_syntax_name, sizeof h->info.transfer_syntax_name, DcmXfer(EXS_DeflatedLittleEndianExplicit).getXferName());
        rc = inflateDataSet(h, sniff, limits.max_inflated_bytes, h->info, message);
        if (rc == LUMEN_DCM_OK && fstat(h->source.fd, &st) == 0) h->readBytes = (uint64_t)st.st_size;
    }
    if (rc != LUMEN_DCM_OK) return refuse(rc, message);
    std::string path = "/proc/self/fd/" + std::to_string(h->source.fd);
    OFCondition c = h->file.loadFile(path.c_str(), EXS_Unknown, EGL_noChange, DCM_MaxReadLength, ERM_autoDetect);
    return finishOpen(h, c, prefixed, limits, out, info, err, err_len);
}

std::string decimal(double v) {
    // DS values hold at most 16 characters: the most precise %g that fits.
    char buf[40];
    for (int precision = 17; precision > 0; precision--) {
        std::snprintf(buf, sizeof buf, "%.*g", precision, v);
        if (std::strlen(buf) <= 16) return buf;
    }
    return "0";
}

// The RLE header of frame `index` (its own fragment, checked at open) before DCMTK's decoder
// sees it: that decoder trusts the segment offsets and reads past the fragment when they do
// not fit. One segment per byte of a sample (PS3.5 G.2), the first at 64, increasing, inside.
int checkRLEHeader(lumen_dcm *h, int32_t index, std::string &message) {
    DcmPixelItem *item = nullptr;
    if (h->sequence == nullptr || h->sequence->getItem(item, (unsigned long)index + 1).bad() || item == nullptr) {
        message = "no fragment for frame " + std::to_string(index);
        return LUMEN_DCM_CORRUPT;
    }
    const uint32_t length = item->getLength();
    uint8_t head[64];
    if (length < 64 || item->getPartialValue(head, 0, 64, &h->cache, EBO_LittleEndian).bad()) {
        message = "RLE fragment of frame " + std::to_string(index) + " is shorter than its 64-byte header";
        return LUMEN_DCM_DECODE;
    }
    const uint32_t segments = le32(head);
    const uint32_t expected = (uint32_t)h->info.bits_allocated / 8;
    if (segments != expected) {
        message = "RLE header of frame " + std::to_string(index) + " declares " + std::to_string(segments) + " segments, " +
                  std::to_string(h->info.bits_allocated) + "-bit samples have " + std::to_string(expected);
        return LUMEN_DCM_DECODE;
    }
    uint32_t previous = 0;
    for (uint32_t i = 0; i < segments; i++) {
        const uint32_t offset = le32(head + 4 + 4 * i);
        if ((i == 0 && offset != 64) || (i > 0 && offset <= previous) || offset >= length) {
            message = "RLE header of frame " + std::to_string(index) + ": segment " + std::to_string(i) + " at " +
                      std::to_string(offset) + " in a fragment of " + std::to_string(length) + " bytes";
            return LUMEN_DCM_DECODE;
        }
        previous = offset;
    }
    return LUMEN_DCM_OK;
}

}  // namespace

extern "C" int lumen_dcm_open_file(const char *path, const lumen_dcm_limits *limits, lumen_dcm **out, lumen_dcm_info *info,
                                   char *err, int err_len) {
    if (path == nullptr || out == nullptr) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "null path or handle");
    *out = nullptr;
    try {
        if (!dictionaryReady()) return fail(LUMEN_DCM_NO_DICTIONARY, err, err_len, dictionaryProblem);
        // Only a regular file: stat refuses the obvious cases unopened; O_NONBLOCK keeps the open of a
        // FIFO (swapped in since) from waiting for a writer, and fstat on the descriptor decides.
        struct stat st{};
        if (stat(path, &st) != 0) return fail(LUMEN_DCM_IO, err, err_len, std::string("cannot open: ") + std::strerror(errno));
        if (!S_ISREG(st.st_mode))
            return fail(LUMEN_DCM_NOT_REGULAR, err, err_len, std::string("is ") + fileKind(st.st_mode) + ", not a regular file");
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) return fail(LUMEN_DCM_IO, err, err_len, std::string("cannot open: ") + std::strerror(errno));
        auto *h = new lumen_dcm();
        h->source.fd = fd;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
            delete h;
            return fail(LUMEN_DCM_NOT_REGULAR, err, err_len, std::string("is ") + fileKind(st.st_mode) + ", not a regular file");
        }
        return openSource(h, effectiveLimits(limits), out, info, err, err_len);
    } catch (const std::bad_alloc &) {
        return fail(LUMEN_DCM_INTERNAL, err, err_len, "out of memory while reading");
    } catch (const std::exception &e) {
        return fail(LUMEN_DCM_INTERNAL, err, err_len, std::string("DCMTK: ") + e.what());
    }
}

extern "C" int lumen_dcm_open_memory(const uint8_t *data, size_t size, const lumen_dcm_limits *limits, lumen_dcm **out,
                                     lumen_dcm_info *info, char *err, int err_len) {
    if ((data == nullptr && size > 0) || out == nullptr) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "null data or handle");
    *out = nullptr;
    try {
        if (!dictionaryReady()) return fail(LUMEN_DCM_NO_DICTIONARY, err, err_len, dictionaryProblem);
        if (size == 0) return fail(LUMEN_DCM_NOT_DICOM, err, err_len, "not a DICOM file: no data");
        auto *h = new lumen_dcm();
        h->source.fd = memfd_create("lumen-dicom", MFD_CLOEXEC);
        if (h->source.fd < 0 || !writeAll(h->source.fd, data, size)) {
            delete h;
            return fail(LUMEN_DCM_INTERNAL, err, err_len, std::string("cannot fill a memory file: ") + std::strerror(errno));
        }
        return openSource(h, effectiveLimits(limits), out, info, err, err_len);
    } catch (const std::bad_alloc &) {
        return fail(LUMEN_DCM_INTERNAL, err, err_len, "out of memory while reading");
    } catch (const std::exception &e) {
        return fail(LUMEN_DCM_INTERNAL, err, err_len, std::string("DCMTK: ") + e.what());
    }
}

extern "C" int lumen_dcm_frame(lumen_dcm *h, int32_t index, int32_t *values, int64_t capacity, char *err, int err_len) {
    if (h == nullptr || values == nullptr) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "null handle or buffer");
    const lumen_dcm_info &info = h->info;
    int64_t count = (int64_t)info.rows * info.columns;
    if (index < 0 || index >= info.frames)
        return fail(LUMEN_DCM_ARGUMENT, err, err_len, "frame " + std::to_string(index) + " of " + std::to_string(info.frames));
    if (capacity < count) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "buffer smaller than one frame");
    try {
        h->scratch.resize(h->frameBytes);
        bool hostOrder = false;
        if (info.compressed) {
            // One frame decoded by its codec into the frame buffer, never more: the decoders write
            // at most `frameBytes`, whatever the stream claims. Words come back in host order.
            auto *pixelData = static_cast<DcmPixelData *>(h->pixels);   // checked to be one at open
            if (h->rle) {
                std::string message;
                if (int rc = checkRLEHeader(h, index, message); rc != LUMEN_DCM_OK) return fail(rc, err, err_len, message);
            }
            OFString model;
            auto decode = [&](int32_t k) {
                Uint32 start = h->startFragment[(size_t)k];
                OFCondition c = pixelData->getUncompressedFrame(h->file.getDataset(), (Uint32)k, start, h->scratch.data(),
                                                                h->frameBytes, model, &h->cache);
                if (c.good() && k + 1 < info.frames) h->startFragment[(size_t)k + 1] = start;
                return c;
            };
            OFCondition c = decode(index);
            if (c.bad() && index > 0 && h->startFragment[(size_t)index] == 0 && info.fragments > info.frames) {
                // Several fragments a frame and no offset table: DCMTK finds a frame's first
                // fragment only from the frame before, so decode forward from the last one known.
                int32_t k = index - 1;
                while (k > 0 && h->startFragment[(size_t)k] == 0) k--;
                c = EC_Normal;
                for (; k < index && c.good(); k++) c = decode(k);
                if (c.good()) c = decode(index);
            }
            if (c.bad())
                return fail(LUMEN_DCM_DECODE, err, err_len, std::string("cannot decode frame ") + std::to_string(index) + " (" +
                                                                info.transfer_syntax_name + "): " + c.text());
            std::string decoded = trimmed(model.c_str());
            if (decoded != "MONOCHROME1" && decoded != "MONOCHROME2")
                return fail(LUMEN_DCM_DECODE, err, err_len, "frame " + std::to_string(index) + " decodes to colour model '" + decoded +
                                                                "', not greyscale");
            hostOrder = true;
        } else {
            OFCondition c = h->pixels->getPartialValue(h->scratch.data(), (Uint32)((uint64_t)index * h->frameBytes),
                                                       h->frameBytes, &h->cache, EBO_LittleEndian);
            if (c.bad()) return fail(LUMEN_DCM_IO, err, err_len, std::string("cannot read frame ") + std::to_string(index) + ": " + c.text());
        }
        const int shift = info.high_bit - info.bits_stored + 1;
        const uint32_t mask = info.bits_stored >= 32 ? 0xFFFFFFFFu : ((1u << info.bits_stored) - 1u);
        const uint32_t sign = 1u << (info.bits_stored - 1);
        const bool isSigned = info.pixel_representation == 1;
        const uint8_t *b = h->scratch.data();
        for (int64_t i = 0; i < count; i++) {
            uint32_t raw;
            if (info.bits_allocated == 8) raw = b[i];
            else if (hostOrder) {
                uint16_t w;
                std::memcpy(&w, b + 2 * i, 2);
                raw = w;
            } else raw = (uint32_t)b[2 * i] | ((uint32_t)b[2 * i + 1] << 8);
            uint32_t v = (raw >> shift) & mask;
            values[i] = (isSigned && (v & sign)) ? (int32_t)v - (int32_t)(mask + 1u) : (int32_t)v;
        }
        return LUMEN_DCM_OK;
    } catch (const std::bad_alloc &) {
        return fail(LUMEN_DCM_INTERNAL, err, err_len, "out of memory while reading a frame");
    } catch (const std::exception &e) {
        return fail(LUMEN_DCM_INTERNAL, err, err_len, std::string("DCMTK: ") + e.what());
    }
}

extern "C" int lumen_dcm_frame_times(lumen_dcm *h, double *ms, int32_t count, char *err, int err_len) {
    if (h == nullptr || ms == nullptr) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "null handle or buffer");
    if (!h->info.has_frame_time_vector) return fail(LUMEN_DCM_MISSING, err, err_len, "no usable FrameTimeVector");
    if (count < h->info.frames) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "buffer smaller than the frame count");
    DcmElement *vector = nullptr;
    if (h->file.getDataset()->findAndGetElement(DCM_FrameTimeVector, vector).bad() || vector == nullptr)
        return fail(LUMEN_DCM_MISSING, err, err_len, "no FrameTimeVector");
    for (int32_t i = 0; i < h->info.frames; i++) {
        Float64 v = 0;
        if (vector->getFloat64(v, (unsigned long)i).bad()) return fail(LUMEN_DCM_CORRUPT, err, err_len, "unreadable FrameTimeVector");
        ms[i] = v;
    }
    return LUMEN_DCM_OK;
}

extern "C" int lumen_dcm_voi_lut(lumen_dcm *h, uint16_t *values, int32_t count, char *err, int err_len) {
    if (h == nullptr || values == nullptr) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "null handle or buffer");
    if (!h->info.has_voi_lut) return fail(LUMEN_DCM_MISSING, err, err_len, "no usable VOI LUT");
    if (count < h->info.voi_lut_entries || (size_t)h->info.voi_lut_entries != h->voiLUT.size())
        return fail(LUMEN_DCM_ARGUMENT, err, err_len, "buffer smaller than the LUT");
    std::memcpy(values, h->voiLUT.data(), h->voiLUT.size() * sizeof(uint16_t));
    return LUMEN_DCM_OK;
}

extern "C" void lumen_dcm_close(lumen_dcm *h) { delete h; }

extern "C" int lumen_dcm_private_isocenter(lumen_dcm *h, double *xyz) {
    if (h == nullptr || xyz == nullptr) return 0;
    DcmDataset *ds = h->file.getDataset();
    OFString creator;
    if (ds->findAndGetOFString(DcmTagKey(0x0029, 0x0010), creator).bad() || trimmed(creator.c_str()) != kPrivateCreator) return 0;
    DcmElement *e = nullptr;
    if (ds->findAndGetElement(DcmTagKey(0x0029, 0x1010), e).bad() || e == nullptr || e->getLength() != 24) return 0;
    uint8_t raw[24];
    // FD when the dictionary knew the VR (explicit syntaxes), UN bytes otherwise: both as little endian.
    if (e->getPartialValue(raw, 0, 24, nullptr, EBO_LittleEndian).bad()) return 0;
    for (int i = 0; i < 3; i++) {
        uint64_t bits = 0;
        for (int k = 7; k >= 0; k--) bits = (bits << 8) | raw[8 * i + k];
        double v;
        std::memcpy(&v, &bits, sizeof v);
        if (!std::isfinite(v)) return 0;
        xyz[i] = v;
    }
    return 1;
}

extern "C" int lumen_dcm_write(const char *path, const lumen_dcm_write_params *p, const uint16_t *pixels,
                               char *err, int err_len) {
    if (path == nullptr || p == nullptr || pixels == nullptr) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "null argument");
    if (p->rows <= 0 || p->columns <= 0 || p->rows > 65535 || p->columns > 65535 || p->frames <= 0)
        return fail(LUMEN_DCM_ARGUMENT, err, err_len, "bad image size");
    if ((p->bits_allocated != 8 && p->bits_allocated != 16) || p->bits_stored < 1 || p->bits_stored > p->bits_allocated)
        return fail(LUMEN_DCM_UNSUPPORTED_BITS, err, err_len, "bits allocated must be 8 or 16 and bits stored 1…allocated");
    uint64_t count = (uint64_t)p->rows * (uint64_t)p->columns * (uint64_t)p->frames;
    if (count * (uint64_t)(p->bits_allocated / 8) > 0xFFFFFFF0ull)
        return fail(LUMEN_DCM_ARGUMENT, err, err_len, "pixel data over 4 GB");
    E_TransferSyntax xfer = p->transfer_syntax == LUMEN_DCM_IMPLICIT_LITTLE ? EXS_LittleEndianImplicit
                          : p->transfer_syntax == LUMEN_DCM_EXPLICIT_BIG   ? EXS_BigEndianExplicit
                                                                            : EXS_LittleEndianExplicit;
    try {
        if (!dictionaryReady()) return fail(LUMEN_DCM_NO_DICTIONARY, err, err_len, dictionaryProblem);
        DcmFileFormat file;
        DcmDataset *ds = file.getDataset();
        char uid[100];
        bool rf = p->sop_class == LUMEN_DCM_SOP_RF;
        std::time_t now = std::time(nullptr);
        std::tm tm{};
        gmtime_r(&now, &tm);
        char date[16], time[16];
        std::strftime(date, sizeof date, "%Y%m%d", &tm);
        std::strftime(time, sizeof time, "%H%M%S", &tm);
        OFCondition c = EC_Normal;
        auto put = [&](const DcmTagKey &key, const std::string &value) {
            if (c.good()) c = ds->putAndInsertString(key, value.c_str());
        };
        auto putUS = [&](const DcmTagKey &key, long value) {
            if (c.good()) c = ds->putAndInsertUint16(key, (Uint16)value);
        };
        put(DCM_SOPClassUID, rf ? UID_XRayRadiofluoroscopicImageStorage : UID_XRayAngiographicImageStorage);
        put(DCM_SOPInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT));
        put(DCM_StudyInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_STUDY_UID_ROOT));
        put(DCM_SeriesInstanceUID, dcmGenerateUniqueIdentifier(uid, SITE_SERIES_UID_ROOT));
        put(DCM_Modality, rf ? "RF" : "XA");
        put(DCM_ImageType, "DERIVED\\PRIMARY\\SINGLE PLANE");
        put(DCM_StudyDate, date);
        put(DCM_StudyTime, time);
        put(DCM_ContentDate, date);
        put(DCM_ContentTime, time);
        put(DCM_AccessionNumber, "");
        put(DCM_ReferringPhysicianName, "");
        put(DCM_Manufacturer, "Lumen");
        put(DCM_PatientName, "Lumen^Simulation");
        put(DCM_PatientID, "LUMEN-SIM");
        put(DCM_PatientBirthDate, "");
        put(DCM_PatientSex, "");
        put(DCM_PatientPosition, "HFS");
        put(DCM_StudyID, "1");
        put(DCM_SeriesNumber, "1");
        put(DCM_InstanceNumber, "1");
        put(DCM_PatientOrientation, "");
        put(DCM_KVP, "");
        put(DCM_RadiationSetting, "GR");
        put(DCM_PixelIntensityRelationship, "LIN");
        put(DCM_LossyImageCompression, "00");
        put(DCM_PositionerMotion, "STATIC");
        putUS(DCM_SamplesPerPixel, 1);
        put(DCM_PhotometricInterpretation, p->monochrome1 ? "MONOCHROME1" : "MONOCHROME2");
        putUS(DCM_Rows, p->rows);
        putUS(DCM_Columns, p->columns);
        putUS(DCM_BitsAllocated, p->bits_allocated);
        putUS(DCM_BitsStored, p->bits_stored);
        putUS(DCM_HighBit, p->bits_stored - 1);
        putUS(DCM_PixelRepresentation, p->pixel_representation ? 1 : 0);
        put(DCM_NumberOfFrames, std::to_string(p->frames));
        if (p->has_rescale) {
            if (!std::isfinite(p->rescale_slope) || p->rescale_slope == 0 || !std::isfinite(p->rescale_intercept))
                return fail(LUMEN_DCM_ARGUMENT, err, err_len, "rescale slope must be finite and non-zero");
            put(DCM_RescaleSlope, decimal(p->rescale_slope));
            put(DCM_RescaleIntercept, decimal(p->rescale_intercept));
            put(DCM_RescaleType, "US");
        }
        if (p->has_geometry) {
            double g[] = {p->source_to_detector, p->source_to_patient, p->pixel_spacing, p->primary_angle, p->secondary_angle};
            for (double v : g)
                if (!std::isfinite(v)) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "non-finite geometry");
            put(DCM_DistanceSourceToDetector, decimal(p->source_to_detector));
            put(DCM_DistanceSourceToPatient, decimal(p->source_to_patient));
            put(DCM_ImagerPixelSpacing, decimal(p->pixel_spacing) + "\\" + decimal(p->pixel_spacing));
            put(DCM_PositionerPrimaryAngle, decimal(p->primary_angle));
            put(DCM_PositionerSecondaryAngle, decimal(p->secondary_angle));
        }
        if (p->has_frame_time) {
            if (!(p->frame_time > 0) || !std::isfinite(p->frame_time))
                return fail(LUMEN_DCM_ARGUMENT, err, err_len, "frame time must be positive");
            put(DCM_FrameTime, decimal(p->frame_time));
            put(DCM_CineRate, std::to_string((long)std::lround(1000.0 / p->frame_time)));
            if (c.good()) c = ds->putAndInsertTagKey(DCM_FrameIncrementPointer, DCM_FrameTime);
        }
        if (p->has_isocenter) {
            for (double v : p->isocenter)
                if (!std::isfinite(v)) return fail(LUMEN_DCM_ARGUMENT, err, err_len, "non-finite isocentre");
            if (c.good()) c = ds->putAndInsertString(DcmTag(0x0029, 0x0010, EVR_LO), kPrivateCreator);
            if (c.good()) {
                DcmTag tag(0x0029, 0x1010, EVR_FD);
                tag.setPrivateCreator(kPrivateCreator);
                auto *e = new DcmFloatingPointDouble(tag);
                c = e->putFloat64Array(p->isocenter, 3);
                if (c.good()) c = ds->insert(e, OFTrue);
                else delete e;
            }
        }
        if (c.good()) {
            const uint16_t mask = (uint16_t)((1u << p->bits_stored) - 1u);
            if (p->bits_allocated == 8) {
                std::vector<Uint8> bytes(count);
                for (uint64_t i = 0; i < count; i++) bytes[i] = (Uint8)(pixels[i] & mask);
                c = ds->putAndInsertUint8Array(DCM_PixelData, bytes.data(), (unsigned long)count);
            } else {
                std::vector<Uint16> words(count);
                for (uint64_t i = 0; i < count; i++) words[i] = (Uint16)(pixels[i] & mask);
                c = ds->putAndInsertUint16Array(DCM_PixelData, words.data(), (unsigned long)count);
            }
        }
        if (c.bad()) return fail(LUMEN_DCM_INTERNAL, err, err_len, std::string("cannot build the data set: ") + c.text());
        c = file.saveFile(path, xfer, EET_ExplicitLength, EGL_recalcGL, EPD_noChange, 0, 0, EWM_fileformat);
        if (c.bad()) return fail(LUMEN_DCM_IO, err, err_len, std::string("cannot write: ") + c.text());
        return LUMEN_DCM_OK;
    } catch (const std::bad_alloc &) {
        return fail(LUMEN_DCM_INTERNAL, err, err_len, "out of memory while writing");
    } catch (const std::exception &e) {
        return fail(LUMEN_DCM_INTERNAL, err, err_len, std::string("DCMTK: ") + e.what());
    }
}
