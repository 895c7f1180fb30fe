// The event-stream parser against the shapes a stream arrives in: whole, cut anywhere, with
// comments and keep-alives, CRLF line ends, several data lines, a field without a value.
import assert from "node:assert/strict";
import { test } from "node:test";
import { EventStreamParser } from "../src/sse";

const STREAM =
  ": keep-alive\n\n" +
  'id: 1\nevent: progress\ndata: {"progress":10}\n\n' +
  'id: 2\nevent: end\ndata: {"status":"completed"}\n\n';

const EXPECTED = [
  { id: "1", kind: "progress", data: '{"progress":10}' },
  { id: "2", kind: "end", data: '{"status":"completed"}' },
];

void test("a whole stream gives its events in order and skips comments", () => {
  assert.deepEqual(new EventStreamParser().push(STREAM), EXPECTED);
});

void test("a stream cut at every possible place gives the same events", () => {
  for (let cut = 0; cut <= STREAM.length; cut++) {
    const parser = new EventStreamParser();
    const events = [...parser.push(STREAM.slice(0, cut)), ...parser.push(STREAM.slice(cut))];
    assert.deepEqual(events, EXPECTED, `cut at ${cut}`);
  }
});

void test("a stream read one character at a time gives the same events", () => {
  const parser = new EventStreamParser();
  const events = [...STREAM].flatMap((character) => parser.push(character));
  assert.deepEqual(events, EXPECTED);
});

void test("CRLF and CR line ends read as LF", () => {
  const parser = new EventStreamParser();
  assert.deepEqual(parser.push("id: 7\r\nevent: end\r\ndata: x\r\n\r\n"), [
    { id: "7", kind: "end", data: "x" },
  ]);
  assert.deepEqual(parser.push("data: y\r\rdata: z\n\n"), [
    { id: "", kind: "message", data: "y" },
    { id: "", kind: "message", data: "z" },
  ]);
});

void test("several data lines join with newlines; colons after the first stay in the value", () => {
  const events = new EventStreamParser().push("data: a: b\ndata\ndata:c\n\n");
  assert.deepEqual(events, [{ id: "", kind: "message", data: "a: b\n\nc" }]);
});

void test("an event without data is not delivered, and an unfinished one waits", () => {
  const parser = new EventStreamParser();
  assert.deepEqual(parser.push("event: progress\n\nid: 3\ndata: {}\n"), []);
  assert.deepEqual(parser.push("\n"), [{ id: "3", kind: "message", data: "{}" }]);
});
