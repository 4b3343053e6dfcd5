import { isKeyfobError } from '@keyfob/core';
import { startNestSample } from './app.js';

try {
  const sample = await startNestSample(process.env);
  process.stdout.write(`nest-sample listening on ${sample.url} (GET ${sample.url}/upstream)\n`);
  const stop = () => {
    void sample.close().then(() => {
      process.stdout.write(`nest-sample stopped: ${JSON.stringify(sample.stats())}\n`);
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
} catch (e) {
  process.stderr.write(
    `${isKeyfobError(e) || e instanceof Error ? e.message : `nest-sample: ${String(e)}`}\n`,
  );
  process.exitCode = 1;
}
