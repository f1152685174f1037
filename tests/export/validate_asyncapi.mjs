// Parses AsyncAPI documents with the official parser (@asyncapi/parser) and prints their
// diagnostics as one JSON object on stdout: {"<document path>": [{severity, code, message,
// path}]}, severity being "error", "warning", "info" or "hint". Exits 1 when any document has
// an error, 2 when it cannot run. Several documents share one start of the parser (~1.5 s).
//
// usage: node validate_asyncapi.mjs DEPS_DIR DOCUMENT.json [DOCUMENT.json ...]
//   DEPS_DIR: the folder scripts/npm-deps.sh installs into (.npm-deps), which holds the parser
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const [depsDir, ...documents] = process.argv.slice(2);
if (!depsDir || documents.length === 0) {
  console.error("usage: node validate_asyncapi.mjs DEPS_DIR DOCUMENT.json [DOCUMENT.json ...]");
  process.exit(2);
}
// the parser lives in the test folder's own node_modules, not beside this script
const require = createRequire(join(resolve(depsDir), "package.json"));
const { Parser } = require("@asyncapi/parser");

// Spectral's numeric severities
const SEVERITY = ["error", "warning", "info", "hint"];

const parser = new Parser();
const report = {};
let failed = false;
for (const path of documents) {
  const { diagnostics } = await parser.parse(readFileSync(path, "utf8"));
  report[path] = diagnostics.map((d) => ({
    severity: SEVERITY[d.severity] ?? String(d.severity),
    code: String(d.code),
    message: d.message,
    path: d.path.map(String),
  }));
  failed ||= report[path].some((d) => d.severity === "error");
}
console.log(JSON.stringify(report, null, 1));
process.exit(failed ? 1 : 0);
