/* DriveLink device side, portable C99. See include/drivelink.h and docs/protocol.md. */
#include "drivelink.h"

static const uint32_t crc_nibble[16] = {
    0x00000000u, 0x105EC76Fu, 0x20BD8EDEu, 0x30E349B1u, 0x417B1DBCu, 0x5125DAD3u, 0x61C69362u, 0x7198540Du,
    0x82F63B78u, 0x92A8FC17u, 0xA24BB5A6u, 0xB21572C9u, 0xC38D26C4u, 0xD3D3E1ABu, 0xE330A81Au, 0xF36E6F75u};

uint32_t dl_crc32c(const uint8_t *data, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    size_t i;
    for (i = 0; i < n; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0xFu];
        crc = (crc >> 4) ^ crc_nibble[crc & 0xFu];
    }
    return crc ^ 0xFFFFFFFFu;
}

size_t dl_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
    size_t code_at = 0, out = 1, i;
    uint8_t code = 1;
    if (cap < n + n / 254u + 1u) return 0;
    for (i = 0; i < n; i++) {
        if (src[i] == 0) {
            dst[code_at] = code;
            code_at = out++;
            code = 1;
        } else {
            dst[out++] = src[i];
            /* A full block opens a new one only if data follows (canonical COBS). */
            if (++code == 0xFF && i + 1 < n) {
                dst[code_at] = code;
                code_at = out++;
                code = 1;
            }
        }
    }
    dst[code_at] = code;
    return out;
}

size_t dl_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap) {
    size_t i = 0, out = 0;
    while (i < n) {
        size_t code = src[i], k;
        if (code == 0 || i + code > n) return 0;
        i++;
        for (k = 1; k < code; k++) {
            if (out >= cap || src[i] == 0) return 0;
            dst[out++] = src[i++];
        }
        if (code != 0xFF && i < n) {
            if (out >= cap) return 0;
            dst[out++] = 0;
        }
    }
    return out;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (uint16_t)p[1] << 8); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) | (uint32_t)get16(p + 2) << 16; }

size_t dl_encode(uint8_t type, uint16_t seq, const uint8_t *payload, uint16_t len,
                 uint8_t *scratch, size_t scratch_cap, uint8_t *out, size_t out_cap) {
    size_t total = DL_HEADER + (size_t)len + DL_CRC, i, n;
    if (len > DL_MAX_PAYLOAD || scratch_cap < total || out_cap < 1) return 0;
    scratch[0] = DL_VERSION;
    scratch[1] = type;
    put16(scratch + 2, seq);
    put16(scratch + 4, len);
    for (i = 0; i < len; i++) scratch[DL_HEADER + i] = payload[i];
    put32(scratch + DL_HEADER + len, dl_crc32c(scratch, DL_HEADER + (size_t)len));
    n = dl_cobs_encode(scratch, total, out, out_cap - 1);
    if (n == 0) return 0;
    out[n] = 0;
    return n + 1;
}

static int known_type(uint8_t t) {
    switch (t) {
    case DL_HELLO: case DL_HELLO_ACK: case DL_COMMAND: case DL_STATE: case DL_HEARTBEAT:
    case DL_HEARTBEAT_ACK: case DL_ENABLE: case DL_ENABLE_ACK: case DL_FAULT: case DL_PARAM_READ:
    case DL_PARAM_WRITE: case DL_PARAM_VALUE: case DL_FAULT_RESET: case DL_FAULT_RESET_ACK:
        return 1;
    default:
        return 0;
    }
}

dl_status dl_decode(const uint8_t *encoded, size_t n, uint8_t *scratch, size_t scratch_cap, dl_frame *frame) {
    size_t len;
    uint16_t declared;
    if (n > DL_MAX_FRAME + DL_MAX_FRAME / 254u + 1u) return DL_E_LONG;
    len = dl_cobs_decode(encoded, n, scratch, scratch_cap);
    if (len == 0) return DL_E_ENCODING;
    if (len < DL_HEADER + DL_CRC) return DL_E_SHORT;
    if (get32(scratch + len - DL_CRC) != dl_crc32c(scratch, len - DL_CRC)) return DL_E_CRC;
    if (scratch[0] != DL_VERSION) return DL_E_VERSION;
    if (!known_type(scratch[1])) return DL_E_TYPE;
    declared = get16(scratch + 4);
    if ((size_t)declared != len - DL_HEADER - DL_CRC) return DL_E_LENGTH;
    frame->type = scratch[1];
    frame->seq = get16(scratch + 2);
    frame->payload = scratch + DL_HEADER;
    frame->length = declared;
    return DL_OK;
}

int dl_seq_newer(uint16_t seq, uint16_t last) {
    uint16_t d = (uint16_t)(seq - last);
    return d != 0 && d < 0x8000u;
}

void dl_device_init(dl_device *d, uint8_t axis_count, uint32_t watchdog_us, const char *fw_id) {
    uint8_t *bytes = (uint8_t *)d;
    size_t i;
    for (i = 0; i < sizeof *d; i++) bytes[i] = 0;
    d->axis_count = axis_count < 1 ? 1 : axis_count > DL_MAX_AXES ? DL_MAX_AXES : axis_count;
    d->watchdog_us = watchdog_us < 1000u ? 1000u : watchdog_us > 1000000u ? 1000000u : watchdog_us;
    for (i = 0; fw_id != 0 && fw_id[i] != 0 && i < sizeof d->firmware_id - 1; i++) d->firmware_id[i] = fw_id[i];
}

/* Appends one reply frame to out at *used; a reply that does not fit is dropped, not cut. */
static void reply(dl_device *d, uint8_t type, uint16_t len, uint8_t *out, size_t cap, size_t *used) {
    size_t n = dl_encode(type, d->tx_seq, d->payload, len, d->scratch, sizeof d->scratch, out + *used, cap - *used);
    if (n > 0) {
        d->tx_seq++;
        *used += n;
    }
}

static size_t state_payload(dl_device *d, uint16_t ack_seq) {
    uint8_t *p = d->payload;
    size_t a, o;
    put16(p, ack_seq);
    put16(p + 2, 0);
    put64(p + 4, d->sample_time_ns);
    for (a = 0; a < d->axis_count; a++) {
        uint16_t st = d->status[a];
        o = 12 + 12 * a;
        st &= (uint16_t)~0xBu;
        if (d->enabled) st |= 1u;
        if (d->fault_code != DL_FAULT_NONE && (d->fault_axis == 0xFFu || d->fault_axis == a)) st |= 2u;
        if (d->fault_code == DL_FAULT_WATCHDOG) st |= 8u;
        put32(p + o, (uint32_t)d->position[a]);
        put32(p + o + 4, (uint32_t)d->velocity[a]);
        put16(p + o + 8, (uint16_t)d->current_ma[a]);
        put16(p + o + 10, st);
    }
    put32(p + 12 + 12 * (size_t)d->axis_count, (uint32_t)d->force_mn);
    return 12 + 12 * (size_t)d->axis_count + 4;
}

static uint32_t elapsed(uint32_t now, uint32_t then) { return now - then; }

static void fault_message(dl_device *d, uint8_t axis, uint16_t code, int32_t detail, uint8_t *out, size_t cap, size_t *used) {
    d->payload[0] = axis;
    d->payload[1] = 0;
    put16(d->payload + 2, code);
    put32(d->payload + 4, (uint32_t)detail);
    reply(d, DL_FAULT, 8, out, cap, used);
}

static void latch(dl_device *d, uint8_t axis, uint16_t code) {
    d->enabled = 0;
    if (d->fault_code != DL_FAULT_NONE) return;
    d->fault_code = code;
    d->fault_axis = axis;
}

static void handle(dl_device *d, const dl_frame *f, uint32_t now_us, uint8_t *out, size_t cap, size_t *used) {
    const uint8_t *p = f->payload;
    size_t a;
    switch (f->type) {
    case DL_HELLO:
        if (f->length != 12) { d->rx_errors++; return; }
        /* payload: min version, max version, reserved u16, cycle period us, host capabilities */
        d->payload[0] = (p[0] <= DL_VERSION && DL_VERSION <= p[1]) ? (uint8_t)DL_VERSION : 0;
        d->payload[1] = d->axis_count;
        put16(d->payload + 2, 0);
        put32(d->payload + 4, d->watchdog_us);
        put32(d->payload + 8, 0);
        for (a = 0; a < 16; a++) d->payload[12 + a] = (uint8_t)d->firmware_id[a];
        d->handshake_done = d->payload[0] == DL_VERSION;
        /* A host that starts over has no motion in flight: the power goes off. Latched faults
         * stay latched for the new host to see and acknowledge. */
        d->enabled = 0;
        d->last_refresh_us = now_us;
        reply(d, DL_HELLO_ACK, 28, out, cap, used);
        return;
    case DL_COMMAND:
        if (f->length != 4 + 8 * d->axis_count || p[0] > 2 || p[1] > 1) { d->rx_errors++; return; }
        if (!d->handshake_done) { d->rx_ignored++; return; }
        d->mode = p[0];
        /* Power only on request, without a latched fault and without safe torque off. */
        if (p[1] == 1 && d->fault_code != DL_FAULT_NONE) d->enable_refused++;
        d->enabled = (uint8_t)(p[1] == 1 && d->fault_code == DL_FAULT_NONE && !d->sto);
        for (a = 0; a < d->axis_count; a++) {
            d->target_position[a] = (int32_t)get32(p + 4 + 8 * a);
            d->target_velocity[a] = (int32_t)get32(p + 8 + 8 * a);
        }
        d->last_refresh_us = now_us;
        reply(d, DL_STATE, (uint16_t)state_payload(d, f->seq), out, cap, used);
        return;
    case DL_HEARTBEAT:
        if (f->length != 0) { d->rx_errors++; return; }
        if (!d->handshake_done) { d->rx_ignored++; return; }
        d->last_refresh_us = now_us;
        put32(d->payload, now_us);
        reply(d, DL_HEARTBEAT_ACK, 4, out, cap, used);
        return;
    case DL_ENABLE:
        if (f->length != 1 || p[0] > 1) { d->rx_errors++; return; }
        d->enabled = (uint8_t)(p[0] == 1 && d->fault_code == DL_FAULT_NONE && d->handshake_done && !d->sto);
        d->payload[0] = d->enabled;
        d->payload[1] = (uint8_t)(p[0] == 1 && !d->enabled ? (d->fault_code != DL_FAULT_NONE ? 1 : !d->handshake_done ? 2 : 3) : 0);
        if (d->enabled) d->last_refresh_us = now_us;
        reply(d, DL_ENABLE_ACK, 2, out, cap, used);
        return;
    case DL_PARAM_READ:
    case DL_PARAM_WRITE: {
        uint16_t id;
        uint8_t status = 0;
        int32_t value = 0;
        if ((f->type == DL_PARAM_READ && f->length != 2) || (f->type == DL_PARAM_WRITE && f->length != 8)) { d->rx_errors++; return; }
        if (!d->handshake_done) { d->rx_ignored++; return; }
        id = get16(p);
        switch (id) {
        case DL_PARAM_WATCHDOG_US:
            if (f->type == DL_PARAM_WRITE) {
                int32_t v = (int32_t)get32(p + 4);
                if (v < 1000 || v > 1000000) status = 3; else d->watchdog_us = (uint32_t)v;
            }
            value = (int32_t)d->watchdog_us;
            break;
        case DL_PARAM_AXIS_COUNT: value = d->axis_count; if (f->type == DL_PARAM_WRITE) status = 2; break;
        case DL_PARAM_VERSION: value = DL_VERSION; if (f->type == DL_PARAM_WRITE) status = 2; break;
        default: status = 1; break;
        }
        put16(d->payload, id);
        d->payload[2] = status;
        d->payload[3] = 0;
        put32(d->payload + 4, (uint32_t)value);
        reply(d, DL_PARAM_VALUE, 8, out, cap, used);
        return;
    }
    case DL_FAULT_RESET:
        if (f->length != 0) { d->rx_errors++; return; }
        if (!d->handshake_done) { d->rx_ignored++; return; }
        /* A watchdog fault's cause is gone once the host talks again (this frame counts); any
         * other clears only when the application no longer reports its cause. The fault left
         * latched is the latched one if its cause lasts, else the lowest code whose cause does. */
        d->last_refresh_us = now_us;
        if (d->fault_code == DL_FAULT_WATCHDOG || d->fault_code >= 32u || !(d->fault_causes & (1u << d->fault_code))) {
            uint16_t c;
            d->fault_code = DL_FAULT_NONE;
            for (c = 2; c < 32u; c++) {
                if (d->fault_causes & (1u << c)) { d->fault_code = c; d->fault_axis = 0xFFu; break; }
            }
        }
        put16(d->payload, d->fault_code);
        reply(d, DL_FAULT_RESET_ACK, 2, out, cap, used);
        return;
    default:
        /* A drive-to-host type arriving at the drive. */
        d->rx_errors++;
        return;
    }
}

size_t dl_device_receive(dl_device *d, const uint8_t *bytes, size_t n, uint32_t now_us, uint8_t *out, size_t cap) {
    size_t used = 0, i;
    for (i = 0; i < n; i++) {
        uint8_t b = bytes[i];
        if (b != 0) {
            if (d->rx_discard) continue;
            if (d->rx_len == sizeof d->rx_buf) { d->rx_discard = 1; d->rx_len = 0; d->rx_errors++; continue; }
            d->rx_buf[d->rx_len++] = b;
            continue;
        }
        if (!d->rx_discard && d->rx_len > 0) {
            dl_frame f;
            dl_status s = dl_decode(d->rx_buf, d->rx_len, d->scratch, sizeof d->scratch, &f);
            if (s != DL_OK) {
                d->rx_errors++;
            } else if (d->have_rx_seq && !dl_seq_newer(f.seq, d->last_rx_seq) && f.type != DL_HELLO) {
                d->rx_stale++;
            } else {
                d->rx_frames++;
                d->last_rx_seq = f.seq;
                d->have_rx_seq = 1;
                /* The payload sits in scratch, which replies reuse: copy it out first. */
                {
                    uint8_t in[DL_MAX_PAYLOAD];
                    size_t k;
                    for (k = 0; k < f.length; k++) in[k] = f.payload[k];
                    f.payload = in;
                    handle(d, &f, now_us, out, cap, &used);
                }
            }
        }
        d->rx_len = 0;
        d->rx_discard = 0;
    }
    return used;
}

size_t dl_device_poll(dl_device *d, uint32_t now_us, uint8_t *out, size_t cap) {
    size_t used = 0;
    if (d->enabled && elapsed(now_us, d->last_refresh_us) > d->watchdog_us) {
        d->watchdog_trips++;
        latch(d, 0xFFu, DL_FAULT_WATCHDOG);
        fault_message(d, 0xFFu, DL_FAULT_WATCHDOG, (int32_t)elapsed(now_us, d->last_refresh_us), out, cap, &used);
    }
    return used;
}

size_t dl_device_fault(dl_device *d, uint8_t axis, uint16_t code, int32_t detail, uint8_t *out, size_t cap) {
    size_t used = 0;
    if (code == DL_FAULT_NONE) return 0;
    if (axis != 0xFFu && axis >= d->axis_count) axis = 0xFFu;
    latch(d, axis, code);
    fault_message(d, axis, code, detail, out, cap, &used);
    return used;
}
