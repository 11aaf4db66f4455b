#!/usr/bin/env python3
"""A DriveLink drive written from docs/protocol.md alone (standard library only).

It shares no code with Lumen's host (Swift) or its C reference: it exists so that
`lumen hil conformance` is proven against a device that read only the specification, and
so that its mutants (`--mutant NAME`) show each check failing for the right reason.

    python3 hil/conformance/pydrive.py                 # opens a pty, prints "pty:/dev/pts/N"
    python3 hil/conformance/pydrive.py --device PATH   # serves a terminal that already exists
    lumen hil conformance --link pty:/dev/pts/N

The axes are ideal: in position mode an axis is where it was told, in velocity mode it moves
at the commanded velocity, in hold it stays; with the power stage off nothing moves.
"""

import argparse
import os
import select
import signal
import struct
import sys
import time
import tty

VERSION = 1
HELLO, HELLO_ACK = 0x01, 0x81
COMMAND, STATE = 0x02, 0x82
HEARTBEAT, HEARTBEAT_ACK = 0x03, 0x83
ENABLE, ENABLE_ACK = 0x04, 0x84
FAULT = 0x85
PARAM_READ, PARAM_WRITE, PARAM_VALUE = 0x06, 0x07, 0x86
FAULT_RESET, FAULT_RESET_ACK = 0x08, 0x88
KNOWN_TYPES = {HELLO, HELLO_ACK, COMMAND, STATE, HEARTBEAT, HEARTBEAT_ACK, ENABLE, ENABLE_ACK,
               FAULT, PARAM_READ, PARAM_WRITE, PARAM_VALUE, FAULT_RESET, FAULT_RESET_ACK}
MAX_PAYLOAD = 240
MAX_WIRE = 252  # the largest encoded frame with its delimiter (docs/protocol.md, Framing)

# The deliberate defects, each a departure from one clause of docs/protocol.md.
MUTANTS = {
    "accept-bad-crc": "applies frames whatever their CRC (Framing)",
    "accept-stale": "applies frames whose seq is not newer than the last accepted (Sequence numbers)",
    "wrong-version": "answers HELLO with version 2, outside the host's range (HELLO and HELLO_ACK)",
    "late-watchdog": "trips its watchdog a second after watchdog_us (Timing rules, Watchdog)",
    "no-fault-message": "latches faults but never sends FAULT (FAULT)",
    "slow-replies": "answers every frame 300 ms late (Timing rules, Reply deadline)",
}


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def cobs_encode_canonical(data):
    """COBS where a full 254-byte block is followed by a new block only if data follows."""
    out = bytearray()
    i = 0
    n = len(data)
    while True:
        j = i
        while j < n and data[j] != 0 and j - i < 254:
            j += 1
        out.append(j - i + 1)
        out += data[i:j]
        if j - i == 254:
            if j == n:
                return bytes(out)
            i = j
            continue
        if j == n:
            return bytes(out)
        i = j + 1  # skip the zero the code byte stands for


def cobs_decode(data):
    """None when not valid COBS: a zero inside, or a block running past the end."""
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        code = data[i]
        if code == 0 or i + code > n:
            return None
        block = data[i + 1:i + code]
        if 0 in block:
            return None
        out += block
        i += code
        if code < 255 and i < n:
            out.append(0)
    return bytes(out)


class Drive:
    def __init__(self, fd, axes, watchdog_us, mutant, firmware_id):
        self.fd = fd
        self.axes = axes
        self.watchdog_us = watchdog_us
        self.mutant = mutant
        self.firmware_id = firmware_id.encode()[:16].ljust(16, b"\0")
        self.tx_seq = 0
        self.last_rx = None  # no "last accepted" seq after power-up
        self.handshake = False
        self.enabled = False
        self.mode = 0
        self.fault = 0  # the latched fault's code, 0 for none
        self.fault_axis = 0xFF
        self.last_refresh = time.monotonic_ns()
        self.pos = [0] * axes
        self.vel = [0] * axes
        self.target_pos = [0] * axes
        self.target_vel = [0] * axes
        self.last_step = time.monotonic_ns()
        self.rx = bytearray()
        self.discarding = False
        self.outbox = []  # (release time ns, bytes)
        self.counts = {"accepted": 0, "dropped": 0, "stale": 0, "ignored": 0}

    # --- sending

    def send(self, mtype, payload):
        frame = struct.pack("<BBHH", VERSION, mtype, self.tx_seq, len(payload)) + payload
        frame += struct.pack("<I", crc32c(frame))
        self.tx_seq = (self.tx_seq + 1) & 0xFFFF
        wire = cobs_encode_canonical(frame) + b"\0"
        delay = 300_000_000 if self.mutant == "slow-replies" else 0
        self.outbox.append((time.monotonic_ns() + delay, wire))

    def flush(self):
        now = time.monotonic_ns()
        while self.outbox and self.outbox[0][0] <= now:
            wire = self.outbox.pop(0)[1]
            try:
                os.write(self.fd, wire)
            except (BlockingIOError, OSError):
                pass  # the host end is closed or full: a drive keeps running

    # --- receiving

    def take(self, data):
        for b in data:
            if b != 0:
                if self.discarding:
                    continue
                if len(self.rx) >= MAX_WIRE:
                    self.discarding = True
                    self.rx = bytearray()
                    self.counts["dropped"] += 1
                    continue
                self.rx.append(b)
                continue
            if self.rx and not self.discarding:
                self.frame(bytes(self.rx))
            self.rx = bytearray()
            self.discarding = False

    def frame(self, encoded):
        raw = cobs_decode(encoded)
        if raw is None or len(raw) < 10:
            self.counts["dropped"] += 1
            return
        crc_ok = struct.unpack_from("<I", raw, len(raw) - 4)[0] == crc32c(raw[:-4])
        if not crc_ok and self.mutant != "accept-bad-crc":
            self.counts["dropped"] += 1
            return
        version, mtype, seq, length = struct.unpack_from("<BBHH", raw, 0)
        if version != VERSION or mtype not in KNOWN_TYPES or length != len(raw) - 10:
            self.counts["dropped"] += 1
            return
        # Sequence after the framing checks, before the payload's (docs/protocol.md, Sequence numbers).
        if mtype != HELLO and self.last_rx is not None and self.mutant != "accept-stale":
            d = (seq - self.last_rx) & 0xFFFF
            if not (0 < d < 0x8000):
                self.counts["stale"] += 1
                return
        self.last_rx = seq
        self.handle(mtype, seq, raw[6:6 + length])

    def handle(self, mtype, seq, p):
        n = self.axes
        sizes = {HELLO: 12, COMMAND: 4 + 8 * n, HEARTBEAT: 0, ENABLE: 1, PARAM_READ: 2, PARAM_WRITE: 8, FAULT_RESET: 0}
        if mtype not in sizes or len(p) != sizes[mtype]:
            self.counts["dropped"] += 1  # a drive's type arriving here, or a wrong size
            return
        now = time.monotonic_ns()
        if mtype == HELLO:
            lo, hi = p[0], p[1]
            version = VERSION if lo <= VERSION <= hi else 0
            if self.mutant == "wrong-version":
                version = 2
            self.handshake = version == VERSION or (self.mutant == "wrong-version" and lo <= VERSION <= hi)
            self.set_power(False, now)
            self.send(HELLO_ACK, struct.pack("<BBHII", version, n, 0, self.watchdog_us, 0) + self.firmware_id)
            self.counts["accepted"] += 1
            return
        if mtype == ENABLE:
            if p[0] > 1:
                self.counts["dropped"] += 1
                return
            self.counts["accepted"] += 1
            reason = 0
            if p[0] == 1:
                if not self.handshake:
                    reason = 2
                elif self.fault:
                    reason = 1
            self.set_power(p[0] == 1 and reason == 0, now)
            self.send(ENABLE_ACK, struct.pack("<BB", int(self.enabled), reason))
            return
        if mtype == COMMAND and (p[0] > 2 or p[1] > 1):
            self.counts["dropped"] += 1
            return
        if not self.handshake:
            self.counts["ignored"] += 1
            return
        self.counts["accepted"] += 1
        if mtype == COMMAND:
            mode, enable = p[0], p[1]
            self.step(now)
            if mode == 0 and self.mode != 0:
                self.target_pos = list(self.pos)
            self.mode = mode
            if mode != 0:
                for i in range(n):
                    self.target_pos[i], self.target_vel[i] = struct.unpack_from("<ii", p, 4 + 8 * i)
            self.last_refresh = now
            self.set_power(enable == 1 and not self.fault, now)
            self.send(STATE, self.state(seq, now))
        elif mtype == HEARTBEAT:
            self.last_refresh = now
            self.send(HEARTBEAT_ACK, struct.pack("<I", (now // 1000) & 0xFFFFFFFF))
        elif mtype in (PARAM_READ, PARAM_WRITE):
            pid = struct.unpack_from("<H", p, 0)[0]
            status, value = 0, 0
            if pid == 0x0001:
                if mtype == PARAM_WRITE:
                    v = struct.unpack_from("<i", p, 4)[0]
                    if 1000 <= v <= 1_000_000:
                        self.watchdog_us = v
                    else:
                        status = 3
                value = self.watchdog_us
            elif pid == 0x0002:
                value = n
                status = 2 if mtype == PARAM_WRITE else 0
            elif pid == 0x0003:
                value = VERSION
                status = 2 if mtype == PARAM_WRITE else 0
            else:
                status = 1
            self.send(PARAM_VALUE, struct.pack("<HBBi", pid, status, 0, value))
        elif mtype == FAULT_RESET:
            # The watchdog's cause is gone: the host is talking again. This drive has no other.
            self.last_refresh = now
            self.fault = 0
            self.send(FAULT_RESET_ACK, struct.pack("<H", 0))

    def set_power(self, on, now):
        if on and not self.enabled:
            self.last_refresh = now  # the watchdog counts from the moment the stage comes on
        self.enabled = on

    def state(self, ack, now):
        body = struct.pack("<HHQ", ack, 0, now)
        for i in range(self.axes):
            st = 1 if self.enabled else 0
            if self.fault and (self.fault_axis == 0xFF or self.fault_axis == i):
                st |= 2
            if self.fault == 1:
                st |= 8
            body += struct.pack("<iihH", self.pos[i], self.vel[i], 0, st)
        return body + struct.pack("<i", 0)

    # --- time

    def step(self, now):
        dt = (now - self.last_step) * 1e-9
        self.last_step = now
        for i in range(self.axes):
            if not self.enabled or self.mode == 0:
                self.vel[i] = 0
                if self.enabled:
                    self.pos[i] = self.target_pos[i]
            elif self.mode == 1:
                self.pos[i], self.vel[i] = self.target_pos[i], self.target_vel[i]
            else:
                self.vel[i] = self.target_vel[i]
                self.pos[i] = max(-2**31, min(2**31 - 1, int(self.pos[i] + self.vel[i] * dt)))

    def poll(self, heard):
        """`heard`: a time by which every frame the host sent has been read (taken before a
        wait that found the line empty). The watchdog judges the silence up to it, not up to
        now: a drive starved of the processor after that wait has not heard a silence."""
        now = time.monotonic_ns()
        self.step(now)
        limit = self.watchdog_us * 1000
        if self.mutant == "late-watchdog":
            limit += 1_000_000_000
        silent = heard - self.last_refresh
        if self.enabled and silent > limit:
            self.enabled = False
            if not self.fault:
                self.fault, self.fault_axis = 1, 0xFF
            if self.mutant != "no-fault-message":
                self.send(FAULT, struct.pack("<BBHi", 0xFF, 0, 1, min(silent // 1000, 2**31 - 1)))

    def run(self):
        parent = os.getppid()
        while True:
            if os.getppid() != parent:
                return  # whoever started this drive is gone (a test run that ended): so is the drive
            timeout = 0.0005
            if self.outbox:
                timeout = max(0.0, min(timeout, (self.outbox[0][0] - time.monotonic_ns()) * 1e-9))
            heard = time.monotonic_ns()
            r, _, _ = select.select([self.fd], [], [], timeout)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except BlockingIOError:
                    data = b""
                except OSError:
                    data = b""  # EIO: no host holds the other end now; wait for the next
                    time.sleep(0.01)
                self.take(data)
            self.poll(heard)
            self.flush()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", help="a terminal to serve (default: open a new pty and print its path)")
    ap.add_argument("--axes", type=int, default=2, help="axis count, 1…8 (default 2)")
    ap.add_argument("--watchdog-us", type=int, default=20000, help="watchdog_us at power-up, 1000…1000000")
    ap.add_argument("--mutant", choices=sorted(MUTANTS), help="a deliberate defect: " +
                    "; ".join(f"{k}: {v}" for k, v in sorted(MUTANTS.items())))
    args = ap.parse_args()
    if not 1 <= args.axes <= 8:
        ap.error("--axes must be 1…8")
    if not 1000 <= args.watchdog_us <= 1_000_000:
        ap.error("--watchdog-us must be 1000…1000000")
    if args.device:
        fd = os.open(args.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(fd)
        keep = None
        print(f"serving {args.device}", flush=True)
    else:
        fd, keep = os.openpty()
        # The slave end stays open here too, so the master reads no EIO between hosts.
        tty.setraw(keep)
        os.set_blocking(fd, False)
        print(f"pty:{os.ttyname(keep)}", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    drive = Drive(fd, args.axes, args.watchdog_us, args.mutant, "pydrive-" + (args.mutant or "ok"))
    try:
        drive.run()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
