/*
 * DriveLink device side: a portable C99 reference for drive firmware.
 *
 * Frame codec (COBS + CRC-32C), message handling, and the enable watchdog, as specified in
 * docs/protocol.md. No malloc, no OS calls, no globals: all state lives in one dl_device the
 * caller owns. The caller moves bytes between the UART and dl_device_receive / dl_device_poll,
 * and between the dl_device's targets/feedback fields and its motor control.
 */
#ifndef DRIVELINK_H
#define DRIVELINK_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DL_VERSION 1u
#define DL_MAX_AXES 8u
#define DL_HEADER 6u
#define DL_CRC 4u
#define DL_MAX_PAYLOAD 240u
#define DL_MAX_FRAME (DL_HEADER + DL_MAX_PAYLOAD + DL_CRC)
/* COBS adds one byte per 254 and one more; the 0x00 delimiter follows. */
#define DL_MAX_WIRE (DL_MAX_FRAME + DL_MAX_FRAME / 254u + 2u)

enum dl_type {
    DL_HELLO = 0x01, DL_HELLO_ACK = 0x81,
    DL_COMMAND = 0x02, DL_STATE = 0x82,
    DL_HEARTBEAT = 0x03, DL_HEARTBEAT_ACK = 0x83,
    DL_ENABLE = 0x04, DL_ENABLE_ACK = 0x84,
    DL_FAULT = 0x85,
    DL_PARAM_READ = 0x06, DL_PARAM_WRITE = 0x07, DL_PARAM_VALUE = 0x86,
    DL_FAULT_RESET = 0x08, DL_FAULT_RESET_ACK = 0x88
};

typedef enum {
    DL_OK = 0,
    DL_E_ENCODING = 1, /* not valid COBS */
    DL_E_SHORT = 2,    /* shorter than header + CRC */
    DL_E_LONG = 3,     /* longer than DL_MAX_FRAME */
    DL_E_CRC = 4,      /* CRC-32C mismatch */
    DL_E_VERSION = 5,  /* unsupported protocol version */
    DL_E_TYPE = 6,     /* unknown message type */
    DL_E_LENGTH = 7,   /* header length disagrees with the frame */
    DL_E_PAYLOAD = 8,  /* wrong payload size for the type */
    DL_E_STALE = 9     /* sequence not newer than the last accepted */
} dl_status;

/* Fault codes (FAULT message, fault_code field). */
enum dl_fault {
    DL_FAULT_NONE = 0,
    DL_FAULT_WATCHDOG = 1,   /* no COMMAND or HEARTBEAT within the watchdog time */
    DL_FAULT_OVERCURRENT = 2,
    DL_FAULT_FOLLOWING = 3,  /* following error too large */
    DL_FAULT_ENCODER = 4,
    DL_FAULT_LIMIT = 5
};

/* Parameters (PARAM_READ / PARAM_WRITE). */
enum dl_param {
    DL_PARAM_WATCHDOG_US = 0x0001, /* rw, 1000 … 1000000 */
    DL_PARAM_AXIS_COUNT = 0x0002,  /* ro */
    DL_PARAM_VERSION = 0x0003      /* ro */
};

typedef struct {
    uint8_t type;
    uint16_t seq;
    const uint8_t *payload; /* points into the scratch buffer given to dl_decode */
    uint16_t length;
} dl_frame;

/* CRC-32C (Castagnoli, reflected 0x82F63B78, init and final XOR 0xFFFFFFFF). */
uint32_t dl_crc32c(const uint8_t *data, size_t n);

/* COBS. Return the output length, or 0 on error (too small a buffer, invalid input). */
size_t dl_cobs_encode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);
size_t dl_cobs_decode(const uint8_t *src, size_t n, uint8_t *dst, size_t cap);

/* Builds header + payload + CRC in scratch, COBS-encodes into out and appends 0x00.
 * Returns the bytes to send, or 0 if a buffer is too small or len > DL_MAX_PAYLOAD. */
size_t dl_encode(uint8_t type, uint16_t seq, const uint8_t *payload, uint16_t len,
                 uint8_t *scratch, size_t scratch_cap, uint8_t *out, size_t out_cap);

/* Decodes one COBS frame (delimiter excluded) into scratch and checks it. */
dl_status dl_decode(const uint8_t *encoded, size_t n, uint8_t *scratch, size_t scratch_cap, dl_frame *frame);

/* 1 when seq is newer than last in 16-bit serial-number arithmetic. */
int dl_seq_newer(uint16_t seq, uint16_t last);

/* One drive with up to DL_MAX_AXES axes. Fields marked (app) are the firmware's to read or
 * write between calls; the rest belong to the protocol. */
typedef struct {
    /* configuration */
    uint8_t axis_count;
    uint32_t watchdog_us;
    char firmware_id[16];

    /* feedback, written by the application (app) */
    int32_t position[DL_MAX_AXES];   /* counts */
    int32_t velocity[DL_MAX_AXES];   /* counts/s */
    int16_t current_ma[DL_MAX_AXES]; /* mA */
    uint16_t status[DL_MAX_AXES];    /* the app's bits: 2 at limit; the codec adds 0 enabled,
                                        1 fault latched, 3 watchdog fault latched */
    int32_t force_mn;                /* insertion force, mN */
    uint64_t sample_time_ns;

    /* targets, read by the application (app) */
    uint8_t mode;                    /* 0 hold, 1 position, 2 velocity */
    int32_t target_position[DL_MAX_AXES];
    int32_t target_velocity[DL_MAX_AXES];

    /* safe torque off input (app writes): while set, the power stays off. An external stop
     * (the safety monitor's enable line) is no fault: the host sees the power off. */
    uint8_t sto;
    /* fault causes present now (app writes): bit c set while the cause of fault code c lasts.
     * FAULT_RESET clears a latched fault only when its cause is gone. */
    uint32_t fault_causes;

    /* power: the application drives its power stage from this (app reads) */
    uint8_t enabled;
    uint16_t fault_code;  /* the latched fault (the first since the last reset), 0 none */
    uint8_t fault_axis;   /* its axis, 0xFF the whole drive */

    /* protocol state */
    uint8_t handshake_done;
    uint16_t tx_seq;
    uint16_t last_rx_seq;
    uint8_t have_rx_seq;
    uint32_t last_refresh_us;

    /* counters */
    uint32_t rx_frames, rx_errors, rx_stale, watchdog_trips;
    /* valid frames ignored before a handshake; COMMANDs asking for power while a fault was
     * latched (a host that ignores faults shows here) */
    uint32_t rx_ignored, enable_refused;

    /* stream assembly and scratch */
    uint8_t rx_buf[DL_MAX_WIRE];
    size_t rx_len;
    uint8_t rx_discard;
    uint8_t scratch[DL_MAX_FRAME];
    uint8_t payload[DL_MAX_PAYLOAD];
} dl_device;

/* axis_count 1…DL_MAX_AXES; watchdog_us 1000…1000000; fw_id up to 15 characters. */
void dl_device_init(dl_device *d, uint8_t axis_count, uint32_t watchdog_us, const char *fw_id);

/* Feeds bytes received from the host; writes replies to out and returns their length.
 * now_us is a free-running microsecond clock (wrap-around is handled). */
size_t dl_device_receive(dl_device *d, const uint8_t *bytes, size_t n, uint32_t now_us, uint8_t *out, size_t cap);

/* Latches a fault the application detected (code DL_FAULT_*, axis or 0xFF for the whole drive,
 * detail per code): the power goes off at once, for every axis, and a FAULT message goes to
 * out (returns its length). A fault while another is latched is reported but does not replace
 * it. Set the code's bit in fault_causes while the cause lasts. */
size_t dl_device_fault(dl_device *d, uint8_t axis, uint16_t code, int32_t detail, uint8_t *out, size_t cap);

/* Runs the watchdog; call at least every millisecond. It is armed only while the power stage
 * is on: on a trip the drive disables itself, latches DL_FAULT_WATCHDOG and writes a FAULT
 * message to out (returns its length). A drive already off has nothing to stop. */
size_t dl_device_poll(dl_device *d, uint32_t now_us, uint8_t *out, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
