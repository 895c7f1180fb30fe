// Uploads a file to Audiomill through tus with tus-js-client, the protocol's reference client.
//
// Environment: AUDIOMILL_URL, AUDIOMILL_TOKEN, TUS_FILE, and optionally TUS_CHUNK (bytes; the
// whole file in one request without it), TUS_RESUME_URL (resume that upload from the offset the
// server reports) and TUS_KILL_AT (kill this process with SIGKILL once that many bytes are sent,
// in the middle of a request). Prints one JSON line when the upload's URL is known ({"url"}),
// one at the first progress event ({"first_progress"}) and one when done ({"offset", "job"}).
const fs = require("fs");
const path = require("path");
const tus = require("tus-js-client");

const file = process.env.TUS_FILE;
const killAt = Number(process.env.TUS_KILL_AT || 0);
let progressed = false;
const say = (line) => process.stdout.write(JSON.stringify(line) + "\n");

const upload = new tus.Upload(fs.createReadStream(file), {
  endpoint: process.env.AUDIOMILL_URL + "/uploads",
  uploadUrl: process.env.TUS_RESUME_URL || null,
  uploadSize: fs.statSync(file).size,
  chunkSize: process.env.TUS_CHUNK ? Number(process.env.TUS_CHUNK) : Infinity,
  headers: { Authorization: "Bearer " + process.env.AUDIOMILL_TOKEN },
  metadata: { filename: path.basename(file), filetype: "video/x-matroska", quality: "4" },
  retryDelays: [0, 500, 1000, 2000],
  onUploadUrlAvailable() {
    say({ url: upload.url });
  },
  onProgress(sent) {
    if (!progressed) {
      progressed = true;
      say({ first_progress: sent });
    }
    if (killAt && sent >= killAt) {
      process.kill(process.pid, "SIGKILL");
    }
  },
  onSuccess(payload) {
    const job = payload.lastResponse.getHeader("Audiomill-Job-Id");
    say({ offset: fs.statSync(file).size, job });
  },
  onError(error) {
    say({ error: String(error) });
    process.exit(1);
  },
});
upload.start();
