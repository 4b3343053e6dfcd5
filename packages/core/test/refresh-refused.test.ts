// A refresh that never reached the server (connection refused: the authorization server is
// restarting) consumed nothing: the refresh token stays good and is used once the server is back,
// instead of sending the user to log in again. Real node:http token endpoint on 127.0.0.1.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { authorizationCode, TokenEndpointError, TokenManager } from '../src/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

function tokenServer(seen: string[]): Server {
  let n = 0;
  return createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c;
    });
    req.on('end', () => {
      const p = new URLSearchParams(body);
      if (p.get('grant_type') === 'refresh_token') seen.push(p.get('refresh_token') ?? '');
      n++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ access_token: `at_${n}`, expires_in: 100, refresh_token: `rt_${n}` }));
    });
  });
}

const listen = (s: Server, port = 0) =>
  new Promise<number>((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve((s.address() as AddressInfo).port));
  });
const close = (s: Server) => new Promise<void>((r) => s.close(() => r()));

it('a refresh refused at connect time keeps the refresh token: renewed with it once the server is back', async () => {
  const seen: string[] = [];
  const first = tokenServer(seen);
  const port = await listen(first);
  const url = `http://127.0.0.1:${port}`;
  let t = Date.now();
  const grant = authorizationCode({
    clientId: 'web',
    clientSecret: 'web-secret',
    redirectUri: 'http://127.0.0.1/cb',
    authorizeUrl: `${url}/authorize`,
    pkce: false,
  });
  const m = new TokenManager({
    tokenUrl: `${url}/token`,
    grant,
    clock: { now: () => t },
    retries: 1,
    retryBaseDelayMs: 1,
  });
  cleanup.push(async () => m.close());
  const set = await grant.exchange('code', { subject: 'ana' });
  expect(set.refreshToken).toBe('rt_1');
  first.closeAllConnections();
  await close(first);

  t = set.expiresAt! + 1;
  const err = await m.getToken({ subject: 'ana' }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(TokenEndpointError);
  expect((err as TokenEndpointError).code).toBe('KEYFOB_TOKEN_ENDPOINT_NETWORK');
  expect((err as TokenEndpointError).requestSent).toBe(false);
  expect(seen).toEqual([]);

  // The server is back on the same port: the same refresh token renews the set.
  const second = tokenServer(seen);
  await listen(second, port);
  cleanup.push(() => close(second));
  t += 60_000;
  const token = await m.getToken({ subject: 'ana' });
  expect(token.accessToken).toBe('at_1');
  expect(seen).toEqual(['rt_1']);
});
