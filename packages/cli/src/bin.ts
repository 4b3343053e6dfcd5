#!/usr/bin/env node
import { run } from './cli.js';

run(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    // run() handles every expected failure; this is a bug, reported without details that could hold a secret.
    process.stderr.write(`keyfob: internal error (${e instanceof Error ? e.name : typeof e})\n`);
    process.exitCode = 1;
  },
);
