"""Prints any audio file's tags and front cover as JSON, read by mutagen (not the writer the
service uses), under common names whatever the format keeps them as:
{"kind": "FLAC", "tags": {"title": "...", "track": "3/12", ...}, "cover": {"mime": ...,
"size": N} or null, "seconds": 4.0}.

ID3 frames, MP4 atoms and Vorbis comments are mapped to `title`, `artist`, `album`,
`album_artist`, `date`, `comment`, `track`, `genre` and `composer`; an Ogg stream's cover is
the FLAC picture block in its METADATA_BLOCK_PICTURE comment. WAV's RIFF INFO is read by
ffprobe instead (mutagen reads only an ID3 chunk there).

Usage: tagdump.py FILE"""

import base64
import json
import sys

import mutagen
from mutagen.flac import Picture

NAMES = {
    # ID3
    "TIT2": "title", "TPE1": "artist", "TALB": "album", "TPE2": "album_artist",
    "TDRC": "date", "TRCK": "track", "TCON": "genre", "TCOM": "composer",
    # MP4
    "\xa9nam": "title", "\xa9ART": "artist", "\xa9alb": "album", "aART": "album_artist",
    "\xa9day": "date", "\xa9cmt": "comment", "\xa9gen": "genre", "\xa9wrt": "composer",
    # Vorbis comments
    "title": "title", "artist": "artist", "album": "album", "albumartist": "album_artist",
    "date": "date", "description": "comment", "comment": "comment", "tracknumber": "track",
    "genre": "genre", "composer": "composer",
}

audio = mutagen.File(sys.argv[1])
tags, cover = {}, None
for key, value in (audio.tags or {}).items():
    if key.startswith("COMM"):
        tags["comment"] = str(value.text[0])
    elif key.startswith("APIC"):
        cover = {"mime": value.mime, "type": int(value.type), "size": len(value.data)}
    elif key == "covr":
        picture = value[0]
        mime = "image/png" if picture.imageformat == picture.FORMAT_PNG else "image/jpeg"
        cover = {"mime": mime, "type": 3, "size": len(bytes(picture))}
    elif key == "trkn":
        number, total = value[0]
        tags["track"] = f"{number}/{total}" if total else str(number)
    elif key.lower() == "metadata_block_picture":
        picture = Picture(base64.b64decode(value[0]))
        cover = {"mime": picture.mime, "type": int(picture.type), "size": len(picture.data)}
    elif key in NAMES or key.lower() in NAMES:
        name = NAMES.get(key) or NAMES[key.lower()]
        text = value[0] if isinstance(value, list) else value
        tags[name] = str(text)
for picture in getattr(audio, "pictures", []):
    cover = {"mime": picture.mime, "type": int(picture.type), "size": len(picture.data)}
print(
    json.dumps(
        {
            "kind": type(audio).__name__,
            "tags": tags,
            "cover": cover,
            "seconds": round(audio.info.length, 3),
        }
    )
)
