"""Prints an MP3's ID3v2 tag as JSON, read by mutagen (not the writer the service uses):
{"version": "2.4", "frames": {"TIT2": "...", "COMM": "...", ...}, "pictures": [{"mime": ...,
"type": 3, "size": N}]}, or {"version": null} when the file has no ID3v2 tag.

Usage: id3dump.py MP3 [PICTURE]: the first picture's bytes are written to PICTURE."""

import json
import sys

from mutagen.id3 import ID3, ID3NoHeaderError

try:
    tag = ID3(sys.argv[1])
except ID3NoHeaderError:
    print(json.dumps({"version": None}))
    sys.exit(0)

frames = {}
pictures = []
for frame in tag.values():
    if frame.FrameID == "APIC":
        pictures.append(
            {
                "mime": frame.mime,
                "type": int(frame.type),
                "size": len(frame.data),
            }
        )
        if len(pictures) == 1 and len(sys.argv) > 2:
            with open(sys.argv[2], "wb") as out:
                out.write(frame.data)
    elif frame.FrameID == "COMM":
        frames["COMM"] = frame.text[0]
        frames["COMM:lang"] = frame.lang
    else:
        frames[frame.FrameID] = str(frame)
print(
    json.dumps(
        {
            "version": "%d.%d" % tag.version[:2],
            "frames": frames,
            "pictures": pictures,
        }
    )
)
