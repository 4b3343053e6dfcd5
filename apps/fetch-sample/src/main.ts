import { isKeyfobError } from '@keyfob/core';
import { runFetchSample } from './run.js';

try {
  const report = await runFetchSample(process.env, (line) => console.error(line));
  console.log(JSON.stringify(report));
  process.exitCode = report.failed === 0 ? 0 : 1;
} catch (e) {
  console.error(
    isKeyfobError(e) ? `${e.name} (${e.code}): ${e.message}` : e instanceof Error ? e.message : String(e),
  );
  process.exitCode = 2;
}
