/* Unit tests of the DriveLink C reference. Prints "N passed, N failed"; exits non-zero on failure. */
#include "drivelink.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (cond) {                                                             \
            passed++;                                                           \
        } else {                                                                \
            failed++;                                                           \
            printf("FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);              \
        }                                                                       \
    } while (0)

static void test_crc(void) {
    const uint8_t check[] = "123456789";
    CHECK(dl_crc32c(check, 9) == 0xE3069283u);
    CHECK(dl_crc32c(check, 0) == 0x00000000u);
}

static int cobs_case(const uint8_t *in, size_t n, const uint8_t *expected, size_t en) {
    uint8_t enc[600], dec[600];
    size_t e = dl_cobs_encode(in, n, enc, sizeof enc);
    size_t d = dl_cobs_decode(enc, e, dec, sizeof dec);
    return e == en && memcmp(enc, expected, en) == 0 && d == n && memcmp(dec, in, n) == 0;
}

static void test_cobs(void) {
    uint8_t a[] = {0x00}, ea[] = {0x01, 0x01};
    uint8_t b[] = {0x00, 0x00}, eb[] = {0x01, 0x01, 0x01};
    uint8_t c[] = {0x11, 0x22, 0x00, 0x33}, ec[] = {0x03, 0x11, 0x22, 0x02, 0x33};
    uint8_t d[] = {0x11, 0x22, 0x33, 0x44}, ed[] = {0x05, 0x11, 0x22, 0x33, 0x44};
    uint8_t e[] = {0x11, 0x00, 0x00, 0x00}, ee[] = {0x02, 0x11, 0x01, 0x01, 0x01};
    uint8_t f[254], ef[255], g[255], eg[257];
    uint8_t bad1[] = {0x03, 0x11, 0x00}, bad2[] = {0x05, 0x11}, out[16];
    size_t i;
    for (i = 0; i < 254; i++) { f[i] = (uint8_t)(i + 1); ef[i + 1] = (uint8_t)(i + 1); }
    ef[0] = 0xFF;
    for (i = 0; i < 255; i++) g[i] = (uint8_t)(i % 255 + 1);
    eg[0] = 0xFF;
    for (i = 0; i < 254; i++) eg[i + 1] = g[i];
    eg[255] = 0x02;
    eg[256] = g[254];
    CHECK(cobs_case(a, 1, ea, 2));
    CHECK(cobs_case(b, 2, eb, 3));
    CHECK(cobs_case(c, 4, ec, 5));
    CHECK(cobs_case(d, 4, ed, 5));
    CHECK(cobs_case(e, 4, ee, 5));
    CHECK(cobs_case(f, 254, ef, 255));
    CHECK(cobs_case(g, 255, eg, 257));
    CHECK(dl_cobs_decode(bad1, 3, out, sizeof out) == 0); /* zero inside a frame */
    CHECK(dl_cobs_decode(bad2, 2, out, sizeof out) == 0); /* block runs past the end */
    CHECK(dl_cobs_encode(d, 4, out, 4) == 0);             /* output too small */
}

static void test_frames(void) {
    uint8_t payload[3] = {0xAA, 0x00, 0x55}, scratch[DL_MAX_FRAME], wire[DL_MAX_WIRE], dec[DL_MAX_FRAME];
    dl_frame f;
    size_t n = dl_encode(DL_HEARTBEAT, 0x1234, payload, 3, scratch, sizeof scratch, wire, sizeof wire);
    size_t i, zeros = 0;
    CHECK(n > 0 && wire[n - 1] == 0);
    for (i = 0; i + 1 < n; i++) zeros += wire[i] == 0;
    CHECK(zeros == 0);
    CHECK(dl_decode(wire, n - 1, dec, sizeof dec, &f) == DL_OK);
    CHECK(f.type == DL_HEARTBEAT && f.seq == 0x1234 && f.length == 3 && memcmp(f.payload, payload, 3) == 0);

    /* Every single-bit error in the encoded frame is caught. */
    {
        size_t bit, caught = 0, total = 0;
        for (bit = 0; bit < (n - 1) * 8; bit++) {
            uint8_t copy[DL_MAX_WIRE];
            memcpy(copy, wire, n - 1);
            copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            total++;
            caught += dl_decode(copy, n - 1, dec, sizeof dec, &f) != DL_OK;
        }
        CHECK(caught == total);
    }

    /* Version, type and length problems are named. */
    {
        uint8_t raw[10] = {2, DL_HEARTBEAT, 0, 0, 0, 0, 0, 0, 0, 0}, enc[16];
        size_t e;
        uint32_t c = dl_crc32c(raw, 6);
        raw[6] = (uint8_t)c; raw[7] = (uint8_t)(c >> 8); raw[8] = (uint8_t)(c >> 16); raw[9] = (uint8_t)(c >> 24);
        e = dl_cobs_encode(raw, 10, enc, sizeof enc);
        CHECK(dl_decode(enc, e, dec, sizeof dec, &f) == DL_E_VERSION);
        raw[0] = 1; raw[1] = 0x42;
        c = dl_crc32c(raw, 6);
        raw[6] = (uint8_t)c; raw[7] = (uint8_t)(c >> 8); raw[8] = (uint8_t)(c >> 16); raw[9] = (uint8_t)(c >> 24);
        e = dl_cobs_encode(raw, 10, enc, sizeof enc);
        CHECK(dl_decode(enc, e, dec, sizeof dec, &f) == DL_E_TYPE);
        raw[1] = DL_HEARTBEAT; raw[4] = 5;
        c = dl_crc32c(raw, 6);
        raw[6] = (uint8_t)c; raw[7] = (uint8_t)(c >> 8); raw[8] = (uint8_t)(c >> 16); raw[9] = (uint8_t)(c >> 24);
        e = dl_cobs_encode(raw, 10, enc, sizeof enc);
        CHECK(dl_decode(enc, e, dec, sizeof dec, &f) == DL_E_LENGTH);
        CHECK(dl_decode(enc, 3, dec, sizeof dec, &f) != DL_OK);
    }
    CHECK(dl_encode(DL_STATE, 0, payload, DL_MAX_PAYLOAD + 1, scratch, sizeof scratch, wire, sizeof wire) == 0);
    CHECK(dl_seq_newer(1, 0) && dl_seq_newer(0, 0xFFFF) && !dl_seq_newer(5, 5) && !dl_seq_newer(4, 5) && !dl_seq_newer(0x8005, 5));
}

/* Host-side helper: one frame from the host, the drive's replies decoded. */
static dl_device dev;
static uint16_t host_seq;

static size_t send(uint8_t type, const uint8_t *payload, uint16_t len, uint32_t now, dl_frame *reply_frame, uint8_t *reply_scratch) {
    uint8_t scratch[DL_MAX_FRAME], wire[DL_MAX_WIRE], out[2 * DL_MAX_WIRE];
    size_t n = dl_encode(type, host_seq++, payload, len, scratch, sizeof scratch, wire, sizeof wire);
    size_t r = dl_device_receive(&dev, wire, n, now, out, sizeof out);
    if (r > 0 && reply_frame != NULL) {
        if (dl_decode(out, r - 1, reply_scratch, DL_MAX_FRAME, reply_frame) != DL_OK) return 0;
    }
    return r;
}

static void test_device(void) {
    uint8_t hello[12] = {1, 1, 0, 0, 0xE8, 0x03, 0, 0, 0, 0, 0, 0}, cmd[4 + 8 * 2], rs[DL_MAX_FRAME], one;
    uint8_t out[DL_MAX_WIRE];
    dl_frame r;
    dl_device_init(&dev, 2, 20000, "ref-1.0");
    host_seq = 100;

    /* Commands before the handshake are ignored. */
    memset(cmd, 0, sizeof cmd);
    cmd[0] = 1; cmd[1] = 1;
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 0, &r, rs) == 0);
    CHECK(!dev.enabled);

    CHECK(send(DL_HELLO, hello, 12, 10, &r, rs) > 0);
    CHECK(r.type == DL_HELLO_ACK && r.length == 28 && r.payload[0] == 1 && r.payload[1] == 2);
    CHECK(memcmp(r.payload + 12, "ref-1.0", 7) == 0);

    /* A command sets targets and power and is answered with the state. */
    cmd[4] = 0x10; cmd[5] = 0x27; /* axis 0 target 10000 */
    dev.position[0] = 1234;
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 1000, &r, rs) > 0);
    CHECK(dev.enabled && dev.mode == 1 && dev.target_position[0] == 10000);
    CHECK(r.type == DL_STATE && r.length == 12 + 12 * 2 + 4);
    CHECK(r.payload[0] == (uint8_t)(host_seq - 1));
    CHECK((int32_t)(r.payload[12] | r.payload[13] << 8) == 1234);
    CHECK((r.payload[12 + 10] & 1) == 1);

    /* A replayed (stale) frame is dropped and counted. */
    {
        uint16_t saved = host_seq;
        host_seq = (uint16_t)(saved - 1);
        CHECK(send(DL_COMMAND, cmd, sizeof cmd, 1500, &r, rs) == 0);
        CHECK(dev.rx_stale == 1);
        host_seq = saved;
    }

    /* The watchdog disables the drive when commands stop, and reports it. */
    CHECK(dl_device_poll(&dev, 20000, out, sizeof out) == 0);
    CHECK(dev.enabled);
    {
        size_t n = dl_device_poll(&dev, 21001, out, sizeof out);
        CHECK(n > 0 && !dev.enabled && dev.fault_code == DL_FAULT_WATCHDOG && dev.watchdog_trips == 1);
        CHECK(dl_decode(out, n - 1, rs, sizeof rs, &r) == DL_OK && r.type == DL_FAULT && r.payload[2] == DL_FAULT_WATCHDOG);
    }
    /* Latched: commands do not re-enable, ENABLE is refused with the reason. */
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 22000, &r, rs) > 0);
    CHECK(!dev.enabled && (r.payload[12 + 10] & 2) && (r.payload[12 + 10] & 8));
    one = 1;
    CHECK(send(DL_ENABLE, &one, 1, 22100, &r, rs) > 0);
    CHECK(r.type == DL_ENABLE_ACK && r.payload[0] == 0 && r.payload[1] == 1);
    CHECK(send(DL_FAULT_RESET, NULL, 0, 22200, &r, rs) > 0);
    CHECK(r.type == DL_FAULT_RESET_ACK && dev.fault_code == DL_FAULT_NONE);
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 22300, &r, rs) > 0);
    CHECK(dev.enabled);

    /* Parameters. */
    {
        uint8_t rd[2] = {0x02, 0x00}, wr[8] = {0x01, 0, 0, 0, 0x10, 0x27, 0, 0}, bad[8] = {0x01, 0, 0, 0, 5, 0, 0, 0};
        CHECK(send(DL_PARAM_READ, rd, 2, 22400, &r, rs) > 0 && r.type == DL_PARAM_VALUE && r.payload[2] == 0 && r.payload[4] == 2);
        CHECK(send(DL_PARAM_WRITE, wr, 8, 22500, &r, rs) > 0 && r.payload[2] == 0 && dev.watchdog_us == 10000);
        CHECK(send(DL_PARAM_WRITE, bad, 8, 22600, &r, rs) > 0 && r.payload[2] == 3 && dev.watchdog_us == 10000);
        rd[0] = 0x77;
        CHECK(send(DL_PARAM_READ, rd, 2, 22700, &r, rs) > 0 && r.payload[2] == 1);
    }

    /* Malformed input: garbage, a wrong-size command, an oversized run without delimiter. */
    {
        uint8_t junk[5] = {0x07, 0x01, 0x02, 0x00, 0x00};
        uint32_t errors = dev.rx_errors;
        uint8_t big[DL_MAX_WIRE + 10];
        CHECK(dl_device_receive(&dev, junk, 5, 22800, out, sizeof out) == 0);
        CHECK(dev.rx_errors > errors);
        errors = dev.rx_errors;
        CHECK(send(DL_COMMAND, cmd, 7, 22900, &r, rs) == 0 && dev.rx_errors == errors + 1);
        memset(big, 0x11, sizeof big);
        big[sizeof big - 1] = 0;
        CHECK(dl_device_receive(&dev, big, sizeof big, 23000, out, sizeof out) == 0);
        CHECK(send(DL_HEARTBEAT, NULL, 0, 23100, &r, rs) > 0 && r.type == DL_HEARTBEAT_ACK);
    }

    /* Watchdog across the 32-bit microsecond wrap. */
    dev.last_refresh_us = 0xFFFFFF00u;
    dev.enabled = 1;
    CHECK(dl_device_poll(&dev, 0x00000100u, out, sizeof out) == 0 && dev.enabled);
}

/* The rules docs/protocol.md settles: the watchdog armed only while powered, a HELLO turning
 * the power off, nothing but HELLO and ENABLE answered before the handshake, per-axis and
 * drive-wide faults, the first fault latched, remaining_fault, safe torque off. */
static void test_rules(void) {
    uint8_t hello[12] = {1, 1, 0, 0, 0xE8, 0x03, 0, 0, 0, 0, 0, 0}, cmd[4 + 8 * 2], rs[DL_MAX_FRAME], one = 1;
    uint8_t out[DL_MAX_WIRE];
    dl_frame r;
    size_t n;
    dl_device_init(&dev, 2, 20000, "ref-rules");
    host_seq = 7;
    memset(cmd, 0, sizeof cmd);

    /* Before the handshake: HEARTBEAT, PARAM_READ, FAULT_RESET ignored and counted; ENABLE refused (reason 2). */
    CHECK(send(DL_HEARTBEAT, NULL, 0, 0, &r, rs) == 0);
    {
        uint8_t rd[2] = {0x01, 0x00};
        CHECK(send(DL_PARAM_READ, rd, 2, 0, &r, rs) == 0);
    }
    CHECK(send(DL_FAULT_RESET, NULL, 0, 0, &r, rs) == 0);
    CHECK(dev.rx_ignored == 3);
    CHECK(send(DL_ENABLE, &one, 1, 0, &r, rs) > 0 && r.payload[0] == 0 && r.payload[1] == 2);

    /* The first frame is accepted whatever its seq; HELLO resets the sequence state. */
    CHECK(send(DL_HELLO, hello, 12, 10, &r, rs) > 0 && r.type == DL_HELLO_ACK);
    host_seq = 3; /* a restarted host, counting from anywhere */
    CHECK(send(DL_HELLO, hello, 12, 20, &r, rs) > 0 && r.type == DL_HELLO_ACK);
    cmd[1] = 1;
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 100, &r, rs) > 0 && dev.enabled);

    /* A HELLO turns the power off. */
    CHECK(send(DL_HELLO, hello, 12, 200, &r, rs) > 0 && !dev.enabled);

    /* The watchdog is armed only while powered: a host that stopped with enable 0 leaves no fault. */
    cmd[1] = 0;
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 300, &r, rs) > 0 && !dev.enabled);
    CHECK(dl_device_poll(&dev, 300 + 10 * 20000, out, sizeof out) == 0 && dev.fault_code == DL_FAULT_NONE);

    /* A per-axis fault: power off for the whole drive, status bit 1 on that axis only. */
    cmd[1] = 1;
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 300000, &r, rs) > 0 && dev.enabled);
    n = dl_device_fault(&dev, 1, DL_FAULT_OVERCURRENT, 4100, out, sizeof out);
    CHECK(n > 0 && !dev.enabled && dev.fault_code == DL_FAULT_OVERCURRENT && dev.fault_axis == 1);
    CHECK(dl_decode(out, n - 1, rs, sizeof rs, &r) == DL_OK && r.type == DL_FAULT && r.payload[0] == 1 && r.payload[2] == 2);
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 301000, &r, rs) > 0 && !dev.enabled && dev.enable_refused == 1);
    CHECK((r.payload[12 + 10] & 2) == 0 && (r.payload[24 + 10] & 2) == 2 && (r.payload[24 + 10] & 8) == 0);

    /* A second fault is reported but the first stays latched. */
    n = dl_device_fault(&dev, 0xFF, DL_FAULT_LIMIT, 123456, out, sizeof out);
    CHECK(n > 0 && dev.fault_code == DL_FAULT_OVERCURRENT);

    /* FAULT_RESET: the latched fault's cause is gone, the hard limit's lasts: it remains, drive-wide. */
    dev.fault_causes = 1u << DL_FAULT_LIMIT;
    CHECK(send(DL_FAULT_RESET, NULL, 0, 302000, &r, rs) > 0 && r.type == DL_FAULT_RESET_ACK);
    CHECK(r.payload[0] == DL_FAULT_LIMIT && r.payload[1] == 0 && dev.fault_code == DL_FAULT_LIMIT && dev.fault_axis == 0xFF);
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 303000, &r, rs) > 0 && !dev.enabled);
    CHECK((r.payload[12 + 10] & 2) == 2 && (r.payload[24 + 10] & 2) == 2);
    dev.fault_causes = 0;
    CHECK(send(DL_FAULT_RESET, NULL, 0, 304000, &r, rs) > 0 && r.payload[0] == 0 && dev.fault_code == DL_FAULT_NONE);
    /* The power stays off until asked for again. */
    CHECK(!dev.enabled);
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 305000, &r, rs) > 0 && dev.enabled);

    /* Safe torque off: power off, no fault; ENABLE refused with reason 3. */
    dev.sto = 1;
    CHECK(send(DL_COMMAND, cmd, sizeof cmd, 306000, &r, rs) > 0 && !dev.enabled && dev.fault_code == DL_FAULT_NONE);
    CHECK((r.payload[12 + 10] & 0xB) == 0);
    CHECK(send(DL_ENABLE, &one, 1, 306100, &r, rs) > 0 && r.payload[0] == 0 && r.payload[1] == 3);
    dev.sto = 0;

    /* An unknown parameter: status 1, value 0. A read-only one written: status 2, value unchanged. */
    {
        uint8_t rd[2] = {0x42, 0x00}, wr[8] = {0x02, 0, 0, 0, 7, 0, 0, 0};
        CHECK(send(DL_PARAM_READ, rd, 2, 307000, &r, rs) > 0 && r.payload[2] == 1 && r.payload[4] == 0 && r.payload[5] == 0);
        CHECK(send(DL_PARAM_WRITE, wr, 8, 307100, &r, rs) > 0 && r.payload[2] == 2 && r.payload[4] == 2);
    }
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Reads the string after `key` from *p into out as bytes; returns the count or -1. */
static long hex_field(const char **p, const char *key, uint8_t *out, size_t cap) {
    const char *at = strstr(*p, key);
    size_t n = 0;
    if (at == NULL) return -1;
    at = strchr(at + strlen(key), '"');
    if (at == NULL) return -1;
    at++;
    while (*at != '"') {
        int hi = hexval(at[0]), lo = hexval(at[1]);
        if (hi < 0 || lo < 0 || n >= cap) return -1;
        out[n++] = (uint8_t)(hi << 4 | lo);
        at += 2;
    }
    *p = at + 1;
    return (long)n;
}

static long number_field(const char **p, const char *key) {
    const char *at = strstr(*p, key);
    long v;
    if (at == NULL) return -1;
    at += strlen(key);
    while (*at == ' ' || *at == ':') at++;
    v = strtol(at, NULL, 10);
    *p = at;
    return v;
}

/* docs/drivelink-vectors.json, from an implementation of the spec independent of this one:
 * every frame encodes to its wire bytes and decodes back. */
static void test_vectors(const char *path) {
    static char text[65536];
    FILE *f = fopen(path, "rb");
    size_t len;
    const char *p = text;
    int count = 0;
    if (f == NULL) {
        failed++;
        printf("FAIL cannot open %s\n", path);
        return;
    }
    len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = 0;
    while (strstr(p, "\"meaning\"") != NULL) {
        uint8_t payload[DL_MAX_PAYLOAD], wire[DL_MAX_WIRE], scratch[DL_MAX_FRAME], out[DL_MAX_WIRE];
        long type, seq, plen, wlen;
        size_t n;
        dl_frame fr;
        p = strstr(p, "\"meaning\"") + 9;
        type = number_field(&p, "\"type\"");
        seq = number_field(&p, "\"seq\"");
        plen = hex_field(&p, "\"payload\"", payload, sizeof payload);
        wlen = hex_field(&p, "\"wire\"", wire, sizeof wire);
        CHECK(type > 0 && seq >= 0 && plen >= 0 && wlen > 1);
        if (type <= 0 || seq < 0 || plen < 0 || wlen <= 1) return;
        n = dl_encode((uint8_t)type, (uint16_t)seq, payload, (uint16_t)plen, scratch, sizeof scratch, out, sizeof out);
        CHECK(n == (size_t)wlen && memcmp(out, wire, n) == 0);
        CHECK(dl_decode(wire, (size_t)wlen - 1, scratch, sizeof scratch, &fr) == DL_OK);
        CHECK(fr.type == type && fr.seq == seq && fr.length == plen && memcmp(fr.payload, payload, (size_t)plen) == 0);
        count++;
    }
    CHECK(count >= 18);
}

int main(int argc, char **argv) {
    test_crc();
    test_cobs();
    test_frames();
    test_device();
    test_rules();
    test_vectors(argc > 1 ? argv[1] : "../../docs/drivelink-vectors.json");
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
