// A caller awaiting a token keeps the process alive (DESIGN behaviour 4): a script doing
// `await tokens.getToken()` during a retry wait must finish, not exit silently with code 13.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Reply, startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const core = JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)));
const tsx = fileURLToPath(new URL('../../../node_modules/.bin/tsx', import.meta.url));

function run(
  script: string,
  nodeFlags: string[] = [],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      tsx,
      [...nodeFlags, '--eval', script, '--input-type=module'],
      { timeout: 45_000, encoding: 'utf8' },
      (err, stdout, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr }),
    );
  });
}

describe('a caller awaiting a token keeps the process alive', () => {
  it.each<[string, Reply]>([
    ['a 503 (backoff)', { status: 503, body: { error: 'temporarily_unavailable' } }],
    [
      'a 429 with Retry-After',
      { status: 429, headers: { 'retry-after': '1' }, body: { error: 'slow_down' } },
    ],
  ])(
    'through the retry wait after %s',
    async (_name, first) => {
      let n = 0;
      const server = await startServer(() =>
        n++ === 0
          ? first
          : { body: { access_token: 'at_after_wait', token_type: 'Bearer', expires_in: 3600 } },
      );
      cleanup.push(() => server.close());
      const script = `
      import { TokenManager, clientCredentials } from ${core};
      const tokens = new TokenManager({
        tokenUrl: ${JSON.stringify(`${server.url}/token`)},
        grant: clientCredentials({ clientId: 'svc', clientSecret: 'svc-secret' }),
        retries: 2,
        retryBaseDelayMs: 1500,
      });
      const token = await tokens.getToken();
      console.log('got ' + token.accessToken);
      await tokens.close();
    `;
      const r = await run(script);
      expect(r.stderr).toBe('');
      expect(r.stdout.trim()).toBe('got at_after_wait');
      expect(r.code).toBe(0);
      expect(n).toBe(2);
    },
    60_000,
  ); // a child process with tsx start-up, on a busy machine

  it('and a cached token keeps nothing alive: a script that never calls close() exits', async () => {
    const script = `
      import { TokenManager, customGrant } from ${core};
      const tokens = new TokenManager({
        grant: customGrant(async () => ({ access_token: 'at_cached', expires_in: 3600 })),
      });
      await tokens.getToken();
      console.log('got ' + (await tokens.getToken()).accessToken);
    `;
    const r = await run(script);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('got at_cached');
    expect(r.code).toBe(0); // run() gives up after 45 s: a timer holding the loop would fail here
  }, 60_000);

  it('and managers dropped without close() leave nothing behind: their cached tokens are collected', async () => {
    // Each manager serves its token from a field a heartbeat timer keeps in step; the timer holds
    // the field weakly, so it must not keep a dropped manager's token (or a timer chain) alive.
    const script = `
      import { TokenManager, customGrant } from ${core};
      let collected = 0;
      const registry = new FinalizationRegistry(() => { collected++; });
      for (let i = 0; i < 200; i++) {
        const tokens = new TokenManager({
          grant: customGrant(async () => ({ access_token: 'at_' + i, expires_in: 3600 })),
        });
        registry.register(await tokens.getToken(), i);
      }
      for (let round = 0; round < 20 && collected < 199; round++) {
        globalThis.gc();
        await new Promise((r) => setTimeout(r, 50));
      }
      console.log('collected ' + collected);
    `;
    const r = await run(script, ['--expose-gc']);
    expect(r.stderr).toBe('');
    // The last manager may stay reachable from the script's own frame.
    expect(Number(r.stdout.trim().replace('collected ', ''))).toBeGreaterThanOrEqual(199);
    expect(r.code).toBe(0);
  }, 60_000);
});
