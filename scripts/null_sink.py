"""A tiny HTTP server that reads each request's body and throws it away: what a client can push
over loopback when nothing is done with the bytes, to compare the gateway's upload against.

    null_sink.py PORT

Answers every request `200 {"bytes": N}` once its body (by Content-Length) has been read.
"""

import asyncio
import sys


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return  # The client closed its connection between requests.
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            if name.strip().lower() == b"expect" and b"100-continue" in value.lower():
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        left = length
        while left:
            chunk = await reader.read(min(left, 1 << 20))
            if not chunk:
                return
            left -= len(chunk)
        body = b'{"bytes": %d}' % length
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()


async def main() -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", int(sys.argv[1]), limit=1 << 20)
    async with server:
        await server.serve_forever()


asyncio.run(main())
