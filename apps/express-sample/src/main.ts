import { startExpressSample } from './app.js';

const sample = await startExpressSample(process.env);
console.log(`express-sample listening on ${sample.url} (open it in a browser; Ctrl-C stops)`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    if (stopping) return;
    stopping = true;
    sample.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
