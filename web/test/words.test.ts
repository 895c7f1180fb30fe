// What a file's row says: never a step's internal name, and a wait without the server's
// advice to try again (the page tries again by itself).
import assert from "node:assert/strict";
import { test } from "node:test";
import type { JobEvent } from "../src/events";
import { progressText, waitingText } from "../src/words";

const RUNNING = { status: "running", progress: 40, eta_seconds: 75 } as JobEvent;

void test("each step is said in plain words, never by its name", () => {
  const steps = ["validate_token", "fetch_source", "transcode", "store_mp3", "send_email"];
  for (const step of steps) {
    const text = progressText({ ...RUNNING, step } as JobEvent);
    assert.ok(!text.includes(step), text);
    assert.ok(!text.includes("_"), text);
  }
  assert.equal(
    progressText({ ...RUNNING, step: "transcode" }),
    "Converting 40 %, about 1 min 15 s left",
  );
});

void test("a queued job waits for a converter whatever its step says", () => {
  assert.equal(
    progressText({ ...RUNNING, status: "queued", step: "transcode" }),
    "Waiting for a converter",
  );
});

void test("a wait drops the server's advice and says the page retries", () => {
  assert.equal(
    waitingText("The conversion service is unavailable right now; please try again shortly."),
    "The conversion service is unavailable right now; trying again by itself",
  );
  assert.equal(
    waitingText("The conversion service is unavailable right now."),
    "The conversion service is unavailable right now; trying again by itself",
  );
});
