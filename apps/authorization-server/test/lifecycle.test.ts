import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { startAuthorizationServer } from '../src/index.js';
import { clientCredentials } from './helpers.js';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const entry = pathToFileURL(fileURLToPath(new URL('../src/index.ts', import.meta.url))).href;

describe('lifecycle', () => {
  it('listens on 127.0.0.1 and refuses connections after close()', async () => {
    const server = await startAuthorizationServer();
    expect(server.issuer).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(server.apiUrl).toBe(`${server.issuer}/api`);
    await clientCredentials(server);
    await server.close();
    await server.close(); // idempotent
    await expect(fetch(server.tokenUrl)).rejects.toThrow();
  });

  it('close() leaves nothing that keeps the process alive', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'keyfob-as-'));
    const script = join(dir, 'start-and-close.mts');
    writeFileSync(
      script,
      `import { startAuthorizationServer } from ${JSON.stringify(entry)};
const server = await startAuthorizationServer({ tokenLatencyMs: 50 });
const auth = 'Basic ' + Buffer.from('service-basic:service-basic-secret').toString('base64');
const response = await fetch(server.tokenUrl, {
  method: 'POST',
  headers: { authorization: auth, 'content-type': 'application/x-www-form-urlencoded' },
  body: 'grant_type=client_credentials',
});
const { access_token } = await response.json();
const api = await fetch(server.apiUrl + '/hello', { headers: { authorization: 'Bearer ' + access_token } });
await api.text();
await server.close();
await new Promise((r) => setTimeout(r, 200));
const open = process.getActiveResourcesInfo().filter((r) => /TCP|Timeout/.test(r));
console.log('closed ' + api.status + ' ' + JSON.stringify(open));
`,
    );
    try {
      const child = spawn(process.execPath, ['--import', 'tsx', script], {
        cwd: packageDir,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => {
        stdout += chunk;
      });
      child.stderr.on('data', (chunk) => {
        stderr += chunk;
      });
      const code = await new Promise<number | null>((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(null);
        }, 15_000);
        child.on('exit', (exitCode) => {
          clearTimeout(timer);
          resolve(exitCode);
        });
      });
      expect(stderr).toBe('');
      // The child had a keep-alive connection open: after close() no socket or timer may be left.
      expect(stdout.trim()).toBe('closed 200 []');
      expect(code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
