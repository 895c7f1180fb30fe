"""Uploads a file to Audiomill through tus with tuspy, a client nobody here wrote.

Environment: AUDIOMILL_URL, AUDIOMILL_TOKEN, TUS_FILE, TUS_CHUNK (bytes), and optionally
TUS_RESUME_URL (resume that upload from the offset the server reports) and TUS_KILL_AT (kill
this process with SIGKILL once that many bytes have been read for sending, in the middle of a
chunk). Prints one JSON line when the upload's URL is known ({"url", "start"}), and one when it
is done ({"offset", "job"}).
"""

import json
import os
import signal
import threading

from tusclient import client

KILL_AT = int(os.environ.get("TUS_KILL_AT", "0"))


class KilledHalfWay:
    """The file, read as tuspy reads it; the process dies shortly after `KILL_AT` is read."""

    def __init__(self, path):
        self.file = open(path, "rb")

    def seek(self, *args):
        return self.file.seek(*args)

    def tell(self):
        return self.file.tell()

    def read(self, size=-1):
        data = self.file.read(size)
        if KILL_AT and self.file.tell() >= KILL_AT:
            # The chunk is on its way when the process dies.
            threading.Timer(0.05, os.kill, (os.getpid(), signal.SIGKILL)).start()
        return data


def main():
    base = os.environ["AUDIOMILL_URL"]
    path = os.environ["TUS_FILE"]
    tus = client.TusClient(
        base + "/uploads",
        headers={"Authorization": "Bearer " + os.environ["AUDIOMILL_TOKEN"]},
    )
    stream = KilledHalfWay(path)
    uploader = tus.uploader(
        file_stream=stream,
        chunk_size=int(os.environ["TUS_CHUNK"]),
        metadata={"filename": os.path.basename(path), "bitrate_mode": "cbr", "bitrate": "128"},
        url=os.environ.get("TUS_RESUME_URL") or None,
        upload_checksum=True,
        # A chunk cut off a moment ago may still hold the upload (423): try again shortly.
        retries=5,
        retry_delay=1,
    )
    if not uploader.url:
        uploader.set_url(uploader.create_url())
        uploader.offset = 0
    print(json.dumps({"url": uploader.url, "start": uploader.offset}), flush=True)
    while uploader.offset < uploader.stop_at:
        uploader.upload_chunk()
    job = uploader.request.response_headers.get("audiomill-job-id")
    print(json.dumps({"offset": uploader.offset, "job": job}), flush=True)


main()
