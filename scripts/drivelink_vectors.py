#!/usr/bin/env python3
"""DriveLink test vectors from an independent implementation of the spec (docs/protocol.md).

Prints the vectors as JSON (the Swift tests check both the Swift host and the C reference
against them) or, with --markdown, as the table in docs/protocol.md.
"""
import json
import struct
import sys


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def cobs(data: bytes) -> bytes:
    out = bytearray([0])
    code_at, code = 0, 1
    for i, b in enumerate(data):
        if b == 0:
            out[code_at] = code
            code_at, code = len(out), 1
            out.append(0)
        else:
            out.append(b)
            code += 1
            if code == 0xFF and i + 1 < len(data):
                out[code_at] = code
                code_at, code = len(out), 1
                out.append(0)
    out[code_at] = code
    return bytes(out)


def frame(msg_type: int, seq: int, payload: bytes) -> bytes:
    body = struct.pack("<BBHH", 1, msg_type, seq, len(payload)) + payload
    return cobs(body + struct.pack("<I", crc32c(body))) + b"\x00"


VECTORS = [
    ("heartbeat, seq 1", 0x03, 1, b""),
    ("hello: versions 1..1, 1000 us cycle, no capabilities", 0x01, 0, struct.pack("<BBHII", 1, 1, 0, 1000, 0)),
    ("enable on, seq 7", 0x04, 7, bytes([1])),
    ("command, 2 axes, position mode, enabled: axis 0 -> 10000 counts at 2000 counts/s, axis 1 -> -5000",
     0x02, 42, struct.pack("<BBH", 1, 1, 0) + struct.pack("<ii", 10000, 2000) + struct.pack("<ii", -5000, 0)),
    ("state, 1 axis, ack of seq 42, t = 1 s, 1234 counts, 10 counts/s, 250 mA, enabled, force 150 mN",
     0x82, 9, struct.pack("<HHQ", 42, 0, 1_000_000_000) + struct.pack("<iihH", 1234, 10, 250, 1) + struct.pack("<i", 150)),
    ("fault: whole drive, watchdog, 20500 us since the last refresh", 0x85, 3, struct.pack("<BBHi", 0xFF, 0, 1, 20500)),
    ("parameter write: watchdog_us = 10000", 0x07, 12, struct.pack("<HHi", 1, 0, 10000)),
    ("command, 2 axes, hold, enable 0 (bring-up step 3): 32 bytes on the wire",
     0x02, 1, struct.pack("<BBH", 0, 0, 0) + struct.pack("<ii", 0, 0) + struct.pack("<ii", 0, 0)),
    ("hello ack: version 1, 2 axes, 20000 us watchdog, no capabilities, firmware lumen-sim",
     0x81, 0, struct.pack("<BBHII", 1, 2, 0, 20000, 0) + b"lumen-sim".ljust(16, b"\0")),
    ("state, 2 axes, ack of seq 43: power off, axis 0 fault latched (bit 1), axis 1 clear",
     0x82, 10, struct.pack("<HHQ", 43, 0, 1_001_000_000) + struct.pack("<iihH", 10000, 0, 0, 0b0010)
     + struct.pack("<iihH", -5000, 0, 0, 0) + struct.pack("<i", 0)),
    ("state, 1 axis, ack of seq 44: power off, watchdog fault latched (bits 1 and 3)",
     0x82, 11, struct.pack("<HHQ", 44, 0, 1_002_000_000) + struct.pack("<iihH", 1234, 0, 0, 0b1010) + struct.pack("<i", 0)),
    ("fault: axis 0, overcurrent, 4100 mA", 0x85, 4, struct.pack("<BBHi", 0, 0, 2, 4100)),
    ("fault: whole drive, hard limit, 123456 counts", 0x85, 5, struct.pack("<BBHi", 0xFF, 0, 5, 123456)),
    ("fault reset, seq 13 (sent only on an operator's acknowledge)", 0x08, 13, b""),
    ("fault reset ack: hard limit (5) remains, its cause persists", 0x88, 6, struct.pack("<H", 5)),
    ("fault reset ack: cleared", 0x88, 7, struct.pack("<H", 0)),
    ("parameter value: unknown id 0x0042, status 1, value 0", 0x86, 8, struct.pack("<HBBi", 0x42, 1, 0, 0)),
    ("enable ack: refused, safe torque off active (reason 3)", 0x84, 9, bytes([0, 3])),
]


def vectors():
    return [{"meaning": m, "type": t, "seq": s, "payload": p.hex(), "wire": frame(t, s, p).hex()} for m, t, s, p in VECTORS]


if __name__ == "__main__":
    assert crc32c(b"123456789") == 0xE3069283
    if "--markdown" in sys.argv:
        print("| meaning | type | seq | payload (hex) | on the wire (hex, COBS + delimiter) |")
        print("|---|---|---|---|---|")
        for v in vectors():
            print(f"| {v['meaning']} | 0x{v['type']:02X} | {v['seq']} | `{v['payload'] or '(empty)'}` | `{v['wire']}` |")
    else:
        json.dump(vectors(), sys.stdout, indent=2)
        print()
