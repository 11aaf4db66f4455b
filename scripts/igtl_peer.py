#!/usr/bin/env python3
"""An independent OpenIGTLink client (PyPI `pyigtl`) against Lumen's OpenIGTLink server: receives the
tip TRANSFORM and a plane's IMAGE, sends a POINT target and waits for the server's answer. Prints
what it got as JSON; exits 1 when something expected did not arrive.

Usage: scripts/igtl_peer.py PORT [--timeout S]
"""
import json
import sys
import time

import numpy as np
import pyigtl


def main():
    port = int(sys.argv[1])
    timeout = float(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[2] == "--timeout" else 20.0
    client = pyigtl.OpenIGTLinkClient(host="127.0.0.1", port=port)
    out = {"tip": None, "image_shape": None, "image_max": None, "image_spacing": None, "reply": None,
           "plane_tip": None, "route_points": None}
    try:
        tip = client.wait_for_message("LumenTip", timeout=timeout)
        if tip is not None:
            out["tip"] = [float(v) for v in tip.matrix[0:3, 3]]
        image = client.wait_for_message("LumenPlane0", timeout=timeout)
        if image is not None:
            out["image_shape"] = list(image.image.shape)
            out["image_max"] = int(np.max(image.image))
            out["image_spacing"] = float(np.linalg.norm(image.ijk_to_world_matrix[0:3, 0]))
        plane_tip = client.wait_for_message("LumenTipPlane0", timeout=2)
        if plane_tip is not None:
            out["plane_tip"] = [float(v) for v in plane_tip.matrix[0:3, 3]]
        target = out["tip"] or [0.0, 0.0, 0.0]
        client.send_message(pyigtl.PointMessage(positions=[target[0] + 1.0, target[1], target[2]], names=["target"],
                                                device_name="SlicerTarget"), wait=True)
        reply = client.wait_for_message("LumenTargetReply", timeout=timeout)
        if reply is not None:
            out["reply"] = reply.string
    finally:
        client.stop()
    print(json.dumps(out))
    ok = out["tip"] is not None and out["image_shape"] is not None and out["reply"] is not None
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
