// A job's live events (`GET /jobs/{job_id}/events`), read with fetch: EventSource cannot send
// the bearer token.
import type { components } from "./api";
import { accessToken } from "./session";

export type JobEvent = components["schemas"]["JobEvent"];

/** Calls `onEvent` with each event until the job ends (or `signal` aborts). */
export async function follow(
  jobId: string,
  onEvent: (kind: string, event: JobEvent) => void,
  signal: AbortSignal,
): Promise<void> {
  let lastId = "";
  for (let attempt = 0; attempt < 5 && !signal.aborted; attempt++) {
    const token = await accessToken();
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    if (lastId) headers["Last-Event-ID"] = lastId;
    const response = await fetch(`/jobs/${jobId}/events`, { headers, signal }).catch(() => null);
    if (!response?.ok || !response.body) {
      await new Promise((resolve) => setTimeout(resolve, 1000 * (attempt + 1)));
      continue;
    }
    const ended = await read(response.body, (id, kind, data) => {
      lastId = id || lastId;
      onEvent(kind, JSON.parse(data) as JobEvent);
      return kind === "end";
    });
    if (ended) return;
  }
}

/** Reads Server-Sent Events until `onEvent` says the stream is done; whether it was. */
async function read(
  body: ReadableStream<Uint8Array>,
  onEvent: (id: string, kind: string, data: string) => boolean,
): Promise<boolean> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
    if (done || !value) return false;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id = "";
      let kind = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        const [field, ...rest] = line.split(":");
        const text = rest.join(":").replace(/^ /, "");
        if (field === "id") id = text;
        else if (field === "event") kind = text;
        else if (field === "data") data.push(text);
      }
      if (data.length && onEvent(id, kind, data.join("\n"))) {
        await reader.cancel().catch(() => undefined);
        return true;
      }
    }
  }
}
