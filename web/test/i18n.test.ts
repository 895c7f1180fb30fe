// The catalogues: every language says every key, with the same {parameters}; every key the
// page's markup names exists; the words are filled in and fall back to the key's English.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import de from "../src/strings/de.json";
import en from "../src/strings/en.json";
import { t } from "../src/i18n";

const parameters = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

void test("every language has every key, with the same parameters", () => {
  assert.deepEqual(Object.keys(de).sort(), Object.keys(en).sort());
  for (const [key, text] of Object.entries(en)) {
    assert.deepEqual(parameters((de as Record<string, string>)[key]), parameters(text), key);
  }
});

void test("every key the page's markup names is in the catalogue", () => {
  const page = readFileSync("index.html", "utf8");
  const named = [...page.matchAll(/data-i18n(?:-placeholder)?="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(named.length > 50, `${named.length} keys`);
  for (const key of named) assert.ok(key in en, key);
});

void test("parameters are filled in", () => {
  assert.equal(t("group.convert.many", { count: 3 }), "Convert 3 files");
  assert.equal(t("row.refused", { why: "No." }), "Refused: No.");
});
