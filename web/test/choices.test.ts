// The settings as sent: only fields that apply beside the others, and their words.
import assert from "node:assert/strict";
import { test } from "node:test";
import { bitratesFor, formatOf, sendable } from "../src/choices";
import { clock, secondsOf, settingsText, trimText } from "../src/words";

void test("kbit/s go only with a constant or average bitrate, quality only with a varying one", () => {
  assert.deepEqual(sendable({ quality: "0", bitrate: "128" }), { quality: "0" });
  assert.deepEqual(sendable({ quality: "0", bitrate_mode: "cbr", bitrate: "128" }), {
    bitrate_mode: "cbr",
    bitrate: "128",
  });
  assert.deepEqual(sendable({ preset: "voice", quality: "0", bitrate: "128" }), { preset: "voice" });
});

void test("times are read as people write them, as the server reads them", () => {
  assert.equal(secondsOf("90"), 90);
  assert.equal(secondsOf("90.5"), 90.5);
  assert.equal(secondsOf("1:30"), 90);
  assert.equal(secondsOf("1:02:03"), 3723);
  for (const bad of ["", "1:5", "a", "1:30:", "-3", "90.1234"]) assert.equal(secondsOf(bad), null, bad);
  assert.equal(clock(45), "45 s");
  assert.equal(clock(90), "1:30");
  assert.equal(clock(3723), "1:02:03");
});

void test("a trim is previewed as the length it keeps", () => {
  assert.equal(trimText("", ""), "The whole video.");
  assert.equal(trimText("0:30", ""), "From 30 s to the end.");
  assert.equal(trimText("30", "2:00"), "1:30 of each video, from 30 s to 2:00.");
  assert.equal(trimText("2:00", "30"), "The end must come after the start.");
  assert.match(trimText("soon", ""), /^Start: /);
  assert.match(trimText("", "later"), /^End: /);
});

void test("the settings a group was sent with are said in one line", () => {
  assert.equal(settingsText({}), "Converted with: high quality.");
  assert.equal(
    settingsText({ quality: "9", channels: "1", start: "30", normalize: "true" }),
    "Converted with: smallest quality, mono, from 30 s to the end, loudness evened out.",
  );
  assert.equal(
    settingsText({ start: "30", end: "2:00" }),
    "Converted with: high quality, 30 s to 2:00.",
  );
  assert.equal(settingsText({ preset: "podcast" }), "Converted with: made for podcast.");
  assert.equal(
    settingsText({ bitrate_mode: "cbr", bitrate: "192", channels: "2" }),
    "Converted with: constant 192 kbit/s, stereo.",
  );
});

void test("below 32 kHz only the bitrates MPEG-2 has are offered", () => {
  assert.deepEqual(bitratesFor("22050"), [32, 48, 64, 96, 128, 160]);
  assert.ok(bitratesFor("44100").includes(320));
  assert.ok(bitratesFor("").includes(320));
});

void test("each format is sent only the fields it takes", () => {
  assert.deepEqual(sendable({ format: "flac", quality: "0", bitrate_mode: "cbr", bitrate: "128" }), {
    format: "flac",
  });
  assert.deepEqual(sendable({ format: "opus", quality: "0", bitrate_mode: "cbr", bitrate: "64" }), {
    format: "opus",
    bitrate_mode: "cbr",
    bitrate: "64",
  });
  assert.deepEqual(sendable({ format: "m4a", bitrate_mode: "abr", bitrate: "192" }), {
    format: "m4a",
    bitrate: "192",
  });
  // A purpose with a format of its own counts as choosing it.
  assert.deepEqual(sendable({ preset: "archive", bitrate_mode: "cbr", bitrate: "128" }), {
    preset: "archive",
  });
});

void test("the format is the one chosen, else the purpose's, else MP3", () => {
  assert.equal(formatOf({}), "mp3");
  assert.equal(formatOf({ preset: "voice" }), "mp3");
  assert.equal(formatOf({ preset: "speech" }), "opus");
  assert.equal(formatOf({ preset: "apple" }), "m4a");
  assert.equal(formatOf({ preset: "archive", format: "wav" }), "wav");
});

void test("the summary names a format other than MP3", () => {
  assert.match(settingsText({ format: "flac" }), /FLAC/);
  assert.match(settingsText({ format: "opus", bitrate: "48" }), /Opus 48 kbit\/s/);
  assert.match(settingsText({ preset: "archive" }), /FLAC/);
  assert.doesNotMatch(settingsText({}), /MP3|FLAC/);
});
