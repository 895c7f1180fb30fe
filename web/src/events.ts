// A job's live events (`GET /jobs/{job_id}/events`), read with fetch: EventSource cannot send
// the bearer token.
import type { components } from "./api";
import { accessToken } from "./session";
import { EventStreamParser } from "./sse";

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
  const parser = new EventStreamParser();
  for (;;) {
    const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }));
    if (done || !value) return false;
    for (const event of parser.push(decoder.decode(value, { stream: true }))) {
      if (onEvent(event.id, event.kind, event.data)) {
        await reader.cancel().catch(() => undefined);
        return true;
      }
    }
  }
}
