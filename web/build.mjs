// Builds the web app into web/dist, which the gateway's binary embeds:
//   dist/index.html          the page, naming its script and style by content hash
//   dist/app/<name>-<hash>.* the bundled script and style, each with a gzip twin
// The types of the API (src/api.d.ts) are generated from the committed OpenAPI document first,
// and the sources type-checked against them, so the app cannot drift from the API.
//
//   node web/build.mjs           rebuild web/dist and src/api.d.ts
//   node web/build.mjs --check   build into a scratch folder and fail if anything committed
//                                differs (the document changed, or the sources, unbuilt)
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import zlib from "node:zlib";
import * as esbuild from "esbuild";

const WEB = path.dirname(fileURLToPath(import.meta.url));
const DOCUMENT = path.join(WEB, "..", "openapi", "openapi.json");
const TYPES = path.join(WEB, "src", "api.d.ts");
const check = process.argv.includes("--check");

function bin(name) {
  return path.join(WEB, "node_modules", ".bin", name);
}

/** The API's types, generated from the committed document. */
function generateTypes(out) {
  execFileSync(bin("openapi-typescript"), [DOCUMENT, "--output", out], {
    stdio: ["ignore", "ignore", "inherit"],
  });
}

async function bundle(outdir) {
  const built = await esbuild.build({
    entryPoints: [path.join(WEB, "src", "main.ts"), path.join(WEB, "src", "app.css")],
    bundle: true,
    minify: true,
    format: "esm",
    target: ["es2022"],
    entryNames: "[name]-[hash]",
    outdir: path.join(outdir, "app"),
    metafile: true,
    legalComments: "none",
    logLevel: "warning",
  });
  const names = {};
  for (const [file, output] of Object.entries(built.metafile.outputs)) {
    const source = output.entryPoint ?? "";
    names[path.basename(source)] = path.basename(file);
  }
  const page = fs
    .readFileSync(path.join(WEB, "index.html"), "utf8")
    .replace("/app/app.css", `/app/${names["app.css"]}`)
    .replace("/app/app.js", `/app/${names["main.ts"]}`);
  fs.writeFileSync(path.join(outdir, "index.html"), page);
  for (const name of Object.values(names)) {
    const file = path.join(outdir, "app", name);
    const packed = zlib.gzipSync(fs.readFileSync(file), { level: 9 });
    fs.writeFileSync(`${file}.gz`, packed);
  }
}

/** Every file under `dir`, relative, with the SHA-256 of its content (a gzip twin's content
 * unpacked: another zlib may pack the same bytes differently). */
function listing(dir) {
  const files = {};
  const walk = (at) => {
    for (const entry of fs.readdirSync(at, { withFileTypes: true })) {
      const full = path.join(at, entry.name);
      if (entry.isDirectory()) {
        walk(full);
        continue;
      }
      let bytes = fs.readFileSync(full);
      if (full.endsWith(".gz")) bytes = zlib.gunzipSync(bytes);
      files[path.relative(dir, full)] = createHash("sha256").update(bytes).digest("hex");
    }
  };
  if (fs.existsSync(dir)) walk(dir);
  return files;
}

function differences(committed, built) {
  const names = new Set([...Object.keys(committed), ...Object.keys(built)]);
  return [...names].filter((name) => committed[name] !== built[name]).sort();
}

const scratch = check ? fs.mkdtempSync(path.join(os.tmpdir(), "audiomill-web-")) : null;
const types = scratch ? path.join(scratch, "api.d.ts") : TYPES;
generateTypes(types);
if (scratch && fs.readFileSync(types, "utf8") !== fs.readFileSync(TYPES, "utf8")) {
  console.error("web/src/api.d.ts differs from the OpenAPI document's types: run `make web`.");
  process.exit(1);
}
execFileSync(bin("tsc"), ["-p", WEB], { stdio: "inherit" });
const dist = path.join(WEB, "dist");
if (!scratch) {
  fs.rmSync(dist, { recursive: true, force: true });
  await bundle(dist);
} else {
  await bundle(path.join(scratch, "dist"));
  const changed = differences(listing(dist), listing(path.join(scratch, "dist")));
  fs.rmSync(scratch, { recursive: true, force: true });
  if (changed.length) {
    console.error(`web/dist is not what its sources build (${changed.join(", ")}): run \`make web\`.`);
    process.exit(1);
  }
}
