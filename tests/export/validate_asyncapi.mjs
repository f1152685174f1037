// Parses an AsyncAPI document with the official parser (@asyncapi/parser) and prints its
// diagnostics as one JSON array on stdout: [{severity, code, message, path}], severity being
// "error", "warning", "info" or "hint". Exits 1 when any is an error, 2 when it cannot run.
//
// usage: node validate_asyncapi.mjs DEPS_DIR DOCUMENT.json
//   DEPS_DIR: the folder scripts/npm-deps.sh installs into (.npm-deps), which holds the parser
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";

const [depsDir, documentPath] = process.argv.slice(2);
if (!depsDir || !documentPath) {
  console.error("usage: node validate_asyncapi.mjs DEPS_DIR DOCUMENT.json");
  process.exit(2);
}
// the parser lives in the test folder's own node_modules, not beside this script
const require = createRequire(join(resolve(depsDir), "package.json"));
const { Parser } = require("@asyncapi/parser");

// Spectral's numeric severities
const SEVERITY = ["error", "warning", "info", "hint"];

const { diagnostics } = await new Parser().parse(readFileSync(documentPath, "utf8"));
const shown = diagnostics.map((d) => ({
  severity: SEVERITY[d.severity] ?? String(d.severity),
  code: String(d.code),
  message: d.message,
  path: d.path.map(String),
}));
console.log(JSON.stringify(shown, null, 1));
process.exit(shown.some((d) => d.severity === "error") ? 1 : 0);
