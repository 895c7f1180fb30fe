// The name a download is saved under, from the server's Content-Disposition.
import assert from "node:assert/strict";
import { test } from "node:test";
import { attachmentName } from "../src/ui";

void test("the exact name wins over the ASCII fallback", () => {
  assert.equal(
    attachmentName(`attachment; filename="_berraschung and 1 more.zip"; filename*=UTF-8''%C3%9Cberraschung%20and%201%20more.zip`),
    "Überraschung and 1 more.zip",
  );
});

void test("the plain name serves without an exact one, and nothing without either", () => {
  assert.equal(attachmentName('attachment; filename="talk.zip"'), "talk.zip");
  assert.equal(attachmentName("attachment"), null);
  assert.equal(attachmentName(null), null);
});

void test("a malformed exact name falls back to the plain one", () => {
  assert.equal(attachmentName(`attachment; filename="a.zip"; filename*=UTF-8''%E0%A4%A`), "a.zip");
});
