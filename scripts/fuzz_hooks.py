"""schemathesis hooks for `make fuzz-api`: a resumable upload's chunks
(`application/offset+octet-stream`) are raw bytes, sent as `application/octet-stream` is."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
