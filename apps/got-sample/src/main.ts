import { runGotSample } from './run.js';

try {
  const report = await runGotSample(process.env, (line) => console.error(line));
  console.log(JSON.stringify(report));
  process.exitCode = report.failed === 0 ? 0 : 1;
} catch (e) {
  // KeyfobError messages are redacted: no secret or token reaches the terminal.
  console.error(e instanceof Error ? e.message : String(e));
  process.exitCode = 1;
}
