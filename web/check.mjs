// `make test`'s checks of the web app's own code: the linter (eslint.config.mjs) over the
// sources and tests, then the unit tests under test/ (TypeScript, bundled by esbuild into a
// scratch folder and run by node's own test runner).
//
//   node web/check.mjs
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const WEB = path.dirname(fileURLToPath(import.meta.url));

/** Runs `command`, its output passed through; on failure this script ends with its status. */
function run(command, args, options = {}) {
  try {
    execFileSync(command, args, { stdio: "inherit", ...options });
  } catch (error) {
    console.error(`web: ${path.basename(command)} failed`);
    process.exit(error.status ?? 1);
  }
}

run(path.join(WEB, "node_modules", ".bin", "eslint"), ["--max-warnings", "0", "."], { cwd: WEB });

const tests = fs
  .readdirSync(path.join(WEB, "test"))
  .filter((name) => name.endsWith(".test.ts"))
  .map((name) => path.join(WEB, "test", name));
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "audiomill-web-tests-"));
try {
  await esbuild.build({
    entryPoints: tests,
    bundle: true,
    platform: "node",
    format: "esm",
    outdir: scratch,
    outExtension: { ".js": ".mjs" },
    logLevel: "warning",
  });
  const built = fs.readdirSync(scratch).map((name) => path.join(scratch, name));
  // The tests run from the web app's folder, so that they read its files by relative paths.
  run(process.execPath, ["--test", ...built], { cwd: WEB });
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}
