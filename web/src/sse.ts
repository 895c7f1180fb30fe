// Server-Sent Events as the gateway streams them (`GET /jobs/{job_id}/events`), parsed by hand:
// EventSource cannot send the bearer token, so the stream is read with fetch.

/** One event: its `id` (empty when none), its kind (`message` when unnamed) and its data. */
export interface ServerEvent {
  id: string;
  kind: string;
  data: string;
}

/** Splits a stream's text into events as its chunks arrive, however the chunks fall. */
export class EventStreamParser {
  private buffer = "";

  /** The events that `chunk` completes, in order; a partial one waits for the next chunk. */
  push(chunk: string): ServerEvent[] {
    this.buffer += chunk.replace(/\r\n?/g, "\n");
    const events: ServerEvent[] = [];
    let end: number;
    while ((end = this.buffer.indexOf("\n\n")) >= 0) {
      const event = parseBlock(this.buffer.slice(0, end));
      this.buffer = this.buffer.slice(end + 2);
      if (event) events.push(event);
    }
    return events;
  }
}

/** One block of lines; null when it carries no data (a comment, a keep-alive). */
function parseBlock(block: string): ServerEvent | null {
  let id = "";
  let kind = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "id") id = value;
    else if (field === "event") kind = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { id, kind, data: data.join("\n") } : null;
}
