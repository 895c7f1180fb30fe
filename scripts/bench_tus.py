"""Sends a file to Audiomill as one resumable (tus) upload, in chunks of the given size, on
one kept-alive connection, each chunk read from the file as it is sent; prints the seconds it
took and the job it started. For `make bench`: the client does no more than the protocol asks.

    python3 scripts/bench_tus.py API TOKEN FILE CHUNK_BYTES
"""

import base64
import http.client
import os
import sys
import time
import urllib.parse


def main():
    api, token, path, chunk = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    size = os.path.getsize(path)
    url = urllib.parse.urlparse(api)
    connection = http.client.HTTPConnection(url.hostname, url.port)
    headers = {"Authorization": "Bearer " + token, "Tus-Resumable": "1.0.0"}
    name = base64.b64encode(os.path.basename(path).encode()).decode()
    started = time.monotonic()
    connection.request(
        "POST",
        "/uploads",
        headers={**headers, "Upload-Length": str(size), "Upload-Metadata": "filename " + name},
    )
    answer = connection.getresponse()
    answer.read()
    assert answer.status == 201, answer.status
    location = answer.getheader("Location")
    offset, job = 0, None
    with open(path, "rb") as file:
        while offset < size:
            length = min(chunk, size - offset)
            file.seek(offset)
            connection.putrequest("PATCH", location)
            for key, value in headers.items():
                connection.putheader(key, value)
            connection.putheader("Upload-Offset", str(offset))
            connection.putheader("Content-Type", "application/offset+octet-stream")
            connection.putheader("Content-Length", str(length))
            connection.endheaders()
            left = length
            while left:
                piece = file.read(min(left, 1024 * 1024))
                connection.send(piece)
                left -= len(piece)
            answer = connection.getresponse()
            answer.read()
            assert answer.status == 204, (answer.status, offset)
            offset = int(answer.getheader("Upload-Offset"))
            job = answer.getheader("Audiomill-Job-Id")
    print(f"{time.monotonic() - started:.3f} {job}")


main()
