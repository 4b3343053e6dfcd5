import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type Reply, startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';

const endpointSource = pathToFileURL(
  fileURLToPath(new URL('../src/token-endpoint.ts', import.meta.url)),
).href;
const packageDir = fileURLToPath(new URL('..', import.meta.url));

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

/**
 * A script whose only pending work is `await postTokenRequest(...)`. If a retry wait ran on an
 * unref'd timer, Node would find nothing left to do and exit with code 13 (unsettled top-level
 * await) before the answer arrived. (The TokenManager-level test is process-alive.test.ts.)
 */
async function runScript(
  tokenUrl: string,
  keepAlive: boolean | undefined,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'keyfob-keepalive-'));
  cleanup.push(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'script.mts');
  await writeFile(
    file,
    `import { postTokenRequest } from ${JSON.stringify(endpointSource)};
const body = await postTokenRequest(
  ${JSON.stringify(tokenUrl)},
  { body: new URLSearchParams({ grant_type: 'client_credentials' }), secrets: [], grantType: 'client_credentials' },
  {
    timeoutMs: 5000, retries: 2, retryBaseDelayMs: 300, maxRetryAfterMs: 30000, maxResponseBytes: 65536,
    fetch: globalThis.fetch, userAgent: 'keyfob-test', ${keepAlive === undefined ? '' : `keepAlive: ${keepAlive}`}
  },
);
console.log('token:' + body.access_token);
`,
  );
  return new Promise((resolve) => {
    // `--import tsx` resolves from the cwd: the workspace's tsx runs the script's TypeScript import.
    const args = ['--import', 'tsx', file];
    execFile(process.execPath, args, { cwd: packageDir, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function endpoint(replies: Reply[]) {
  let n = 0;
  const server = await startServer(() => replies[Math.min(n++, replies.length - 1)] as Reply);
  cleanup.push(() => server.close());
  return server;
}

const ok: Reply = { body: { access_token: 'tok-after-wait', token_type: 'Bearer', expires_in: 3600 } };

describe('postTokenRequest keepAlive: a caller waiting through a retry keeps the process alive', () => {
  it('through the backoff after a 503 (default keepAlive)', async () => {
    const server = await endpoint([{ status: 503, body: { error: 'temporarily_unavailable' } }, ok]);
    const run = await runScript(`${server.url}/token`, undefined);
    expect(run.stderr).toBe('');
    expect(run.stdout).toContain('token:tok-after-wait');
    expect(run.code).toBe(0);
    expect(server.requests).toHaveLength(2);
  });

  it('through a 429 Retry-After: 1 (default keepAlive)', async () => {
    const server = await endpoint([
      { status: 429, headers: { 'retry-after': '1' }, body: { error: 'slow_down' } },
      ok,
    ]);
    const run = await runScript(`${server.url}/token`, undefined);
    expect(run.stdout).toContain('token:tok-after-wait');
    expect(run.code).toBe(0);
    expect(server.requests).toHaveLength(2);
  });

  it('keepAlive: false (background refresh) does not hold the process open', async () => {
    const server = await endpoint([
      { status: 429, headers: { 'retry-after': '1', connection: 'close' }, body: { error: 'slow_down' } },
      ok,
    ]);
    // `connection: close`: no idle keep-alive socket is left to hold the process either.
    const run = await runScript(`${server.url}/token`, false);
    expect(run.stdout).not.toContain('token:');
    expect(run.code).toBe(13);
  });
});
