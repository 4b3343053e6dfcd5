import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  browserlessLogin,
  DEFAULT_CLIENTS,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '@keyfob/authorization-server';
import { clientCredentials, TokenManager } from '@keyfob/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Browser } from './helpers.js';

/**
 * The README's TypeScript examples are tests: every block not marked `<!-- fragment -->` is compiled with
 * strict + exactOptionalPropertyTypes, and each complete app (`app.listen(3000)`) is run with tsx against the
 * real authorization server, its example URLs pointed at it, then called.
 */
const require = createRequire(import.meta.url);
const DIR = fileURLToPath(new URL('./.readme-examples/', import.meta.url));
const README = readFileSync(new URL('../README.md', import.meta.url), 'utf8');

interface Example {
  file: string;
  heading: string;
  code: string;
}

function readmeExamples(markdown: string): Example[] {
  const out: Example[] = [];
  const lines = markdown.split('\n');
  let heading = '';
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (/^#{1,6} /.test(line)) heading = line.replace(/^#+ /, '');
    if (line.trim() !== '```ts') continue;
    const indent = line.indexOf('`');
    let previous = i - 1;
    while (previous >= 0 && lines[previous]!.trim() === '') previous--;
    const fragment = previous >= 0 && /<!--\s*fragment/.test(lines[previous]!);
    const body: string[] = [];
    for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) body.push(lines[i]!.slice(indent));
    if (!fragment) out.push({ file: `example-${out.length + 1}.ts`, heading, code: `${body.join('\n')}\n` });
  }
  return out;
}

const examples = readmeExamples(README);

function run(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv = {},
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [file, ...args],
      { env: { ...process.env, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` });
      },
    );
  });
}

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

beforeAll(() => {
  rmSync(DIR, { recursive: true, force: true });
  mkdirSync(DIR, { recursive: true });
  writeFileSync(
    `${DIR}tsconfig.json`,
    JSON.stringify({
      extends: '../../../../tsconfig.base.json',
      compilerOptions: { strict: true, exactOptionalPropertyTypes: true, noEmit: true },
      include: ['*.ts'],
    }),
  );
  for (const e of examples) writeFileSync(`${DIR}${e.file}`, e.code);
});

afterAll(() => {
  rmSync(DIR, { recursive: true, force: true });
});

describe('README examples', () => {
  it('has examples, each either complete or marked as a fragment', () => {
    expect(examples.length).toBeGreaterThanOrEqual(3);
    expect(examples.filter((e) => e.code.includes('app.listen(3000)')).length).toBeGreaterThanOrEqual(3);
  });

  it('compile under strict + exactOptionalPropertyTypes', async () => {
    const { code, output } = await run(require.resolve('typescript/bin/tsc'), ['-p', `${DIR}tsconfig.json`]);
    // The examples' own errors; keyfob's sources (resolved through tsconfig paths) reach users as .d.ts files,
    // which skipLibCheck leaves alone.
    const ours = output.split('\n').filter((line) => line.includes('.readme-examples/'));
    expect(ours).toEqual([]);
    // ...and tsc ran: no configuration error (those have no file name), and it checked files.
    expect(output.split('\n').filter((line) => line.startsWith('error TS'))).toEqual([]);
    expect(code === 0 || output.includes('): error TS')).toBe(true);
  }, 120_000);

  describe('run as written against the real authorization server', () => {
    let server: RunningAuthorizationServer;
    const children: ChildProcess[] = [];

    beforeAll(async () => {
      // The examples use each grant's default client authentication (Basic), so the demo server's web app
      // client is registered for client_secret_basic here; the token exchange example's client is `orders-api`.
      const exchangeClient = DEFAULT_CLIENTS.find((c) => c.clientId === 'service-exchange')!;
      server = await startAuthorizationServer({
        clients: [
          ...DEFAULT_CLIENTS.map((c) =>
            c.clientId === 'web-app' ? { ...c, tokenEndpointAuthMethod: 'client_secret_basic' as const } : c,
          ),
          { ...exchangeClient, clientId: 'orders-api', clientSecret: 'orders-api-secret' },
        ],
      });
    });
    afterAll(async () => {
      for (const c of children) c.kill();
      await server.close();
    });

    /** Starts the example on a free port with its URLs pointed at the local servers; resolves its origin. */
    async function start(match: string, env: Record<string, string>): Promise<string> {
      const example = examples.find((e) => e.code.includes(match) && e.code.includes('app.listen(3000)'));
      expect(example, `a complete README example with ${match}`).toBeDefined();
      const port = await freePort();
      const origin = `http://127.0.0.1:${port}`;
      const api = server.apiUrl;
      let code = example!.code;
      for (const [from, to] of [
        ['https://auth.example.com/oauth2/token', server.tokenUrl],
        ['https://auth.example.com/authorize', server.authorizeUrl],
        ['https://auth.example.com/token', server.tokenUrl],
        ['https://auth.example.com/revoke', server.revocationUrl],
        ['https://inventory.example.com/stock', `${api}/hello`],
        ['https://inventory.example.com', api],
        ['https://api.example.com', api],
        ['https://app.example.com', origin],
        ['app.listen(3000)', `app.listen(${port}, '127.0.0.1')`],
      ] as const) {
        code = code.split(from).join(to);
      }
      const file = `${DIR}run-${example!.file}`;
      writeFileSync(file, code);
      const child = spawn(
        process.execPath,
        [require.resolve('tsx/cli'), '--tsconfig', `${DIR}tsconfig.json`, file],
        {
          env: { ...process.env, ...env },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      children.push(child);
      let output = '';
      child.stdout!.on('data', (d) => (output += d));
      child.stderr!.on('data', (d) => (output += d));
      // Bounded wait for the port to answer.
      for (let attempt = 0; attempt < 300; attempt++) {
        if (child.exitCode !== null) throw new Error(`example exited ${child.exitCode}: ${output}`);
        const up = await fetch(`${origin}/`).then(
          (r) => r.body?.cancel().then(() => true),
          () => false,
        );
        if (up) return origin;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`example did not start: ${output}`);
    }

    it('the service token example: /api/hello calls the API with the client-credentials token', async () => {
      const origin = await start('clientCredentials(', {
        CLIENT_ID: 'service-basic',
        CLIENT_SECRET: 'service-basic-secret',
      });
      const r = await fetch(`${origin}/api/hello`);
      expect(r.status).toBe(200);
      expect(await r.json()).toMatchObject({ ok: true, sub: 'service-basic' });
    }, 120_000);

    it('the login example: login, callback, /profile with the user’s token (express-session)', async () => {
      const origin = await start('authorizationCode(', {
        CLIENT_SECRET: 'web-app-secret',
        COOKIE_SECRET: 'readme-cookie-secret-0123456789abcdef0123',
        SESSION_SECRET: 'readme-session-secret-0123456789abcdef0123',
      });
      const b = new Browser(origin);
      expect((await b.get('/profile')).status).toBe(401);
      const login = await b.get('/login', 'text/html');
      expect(login.status).toBe(302);
      const callback = await browserlessLogin(login.location!);
      const done = await b.get(callback.pathname + callback.search, 'text/html');
      expect(done.status).toBe(302);
      const profile = await b.get('/profile');
      expect(profile.status).toBe(200);
      expect(profile.json).toEqual({ ok: true, sub: 'demo-user' });
      expect((await b.post('/logout')).status).toBe(204);
    }, 120_000);

    it('the token exchange example: /orders/stock on the caller’s behalf', async () => {
      const origin = await start('tokenExchange(', { CLIENT_SECRET: 'orders-api-secret' });
      const callers = new TokenManager({
        tokenUrl: server.tokenUrl,
        grant: clientCredentials({ clientId: 'service-basic', clientSecret: 'service-basic-secret' }),
      });
      try {
        const caller = (await callers.getToken()).accessToken;
        const r = await fetch(`${origin}/orders/stock`, { headers: { authorization: `Bearer ${caller}` } });
        const body = await r.json();
        expect(r.status, JSON.stringify(body)).toBe(200);
        expect(body).toMatchObject({
          ok: true,
          sub: 'service-basic',
          client_id: 'orders-api',
        });
        expect((await fetch(`${origin}/orders/stock`)).status).toBe(401);
      } finally {
        await callers.close();
      }
    }, 120_000);
  });
});
