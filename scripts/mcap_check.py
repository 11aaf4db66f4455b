#!/usr/bin/env python3
"""Reads a Lumen recording with the reference MCAP reader (PyPI `mcap`) and prints what it found as
JSON: messages per topic, the first and last log time, whether the summary was there, and the
error that stopped reading, if one did (a file cut short by a crash ends in one).

Usage: scripts/mcap_check.py FILE
"""
import json
import sys

from mcap.reader import NonSeekingReader, make_reader


def main(path):
    counts, first, last, error, summary = {}, None, None, None, False
    images_decoded = 0
    with open(path, "rb") as f:
        reader = make_reader(f)
        try:
            summary = reader.get_summary() is not None
        except Exception:
            summary = False
        f.seek(0)
        # A whole file is read through its summary and indexes, in log-time order; a file without
        # a summary (its writer was killed) from the start, in file order, as far as it goes.
        if summary:
            messages = make_reader(f).iter_messages()
        else:
            messages = NonSeekingReader(f).iter_messages(log_time_order=False)
        try:
            for schema, channel, message in messages:
                counts[channel.topic] = counts.get(channel.topic, 0) + 1
                first = message.log_time if first is None else min(first, message.log_time)
                last = message.log_time if last is None else max(last, message.log_time)
                # Every message is JSON (its channel says so): each must parse.
                if channel.message_encoding != "json":
                    raise ValueError("channel %s is not JSON" % channel.topic)
                json.loads(message.data)
                if schema is not None and schema.name == "foxglove.CompressedImage" and images_decoded < 2:
                    import base64
                    data = base64.b64decode(json.loads(message.data)["data"])
                    if not (data.startswith(b"\x89PNG") or data.startswith(b"\xff\xd8")):
                        raise ValueError("an image that is neither PNG nor JPEG")
                    images_decoded += 1
        except Exception as e:  # a cut-short file ends in an error from the reader
            error = "%s: %s" % (type(e).__name__, e)
    print(json.dumps({"summary": summary, "counts": counts, "messages": sum(counts.values()),
                      "first_ns": first, "last_ns": last, "error": error, "images_checked": images_decoded}))


if __name__ == "__main__":
    main(sys.argv[1])
