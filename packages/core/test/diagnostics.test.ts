import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { Writable } from 'node:stream';
import {
  clientCredentials,
  DiagnosticsChannel,
  diagnostics,
  type KeyfobLogger,
  publishUnauthorizedRetry,
  RequestPolicy,
  TokenManager,
  type TokenRequestMessage,
} from '@keyfob/core';
import { genericClientCredentials, leakScan, type ProviderServer } from '@keyfob/testing';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import winston from 'winston';

const CLIENT_ID = 'diag-client';
const SECRET = 'diag-secret-0a1b2c3d4e5f';

let server: ProviderServer;
const managers: TokenManager[] = [];
const subscriptions: [string, (m: unknown) => void][] = [];

function listen(name: string): unknown[] {
  const seen: unknown[] = [];
  const fn = (m: unknown) => seen.push(structuredClone(m));
  subscribe(name, fn);
  subscriptions.push([name, fn]);
  return seen;
}

function manager(secret = SECRET, extra: Record<string, unknown> = {}) {
  const m = new TokenManager({
    tokenUrl: server.tokenUrl,
    grant: clientCredentials({ clientId: CLIENT_ID, clientSecret: secret, scope: 'read' }),
    retryBaseDelayMs: 1,
    ...extra,
  });
  managers.push(m);
  return m;
}

beforeEach(async () => {
  server = await genericClientCredentials({ clientId: CLIENT_ID, clientSecret: SECRET });
});

afterEach(async () => {
  for (const [n, fn] of subscriptions.splice(0)) unsubscribe(n, fn);
  for (const m of managers.splice(0)) await m.close();
  await server.close();
});

describe('diagnostics channels', () => {
  it('the token-request tracing channel: start, end, asyncStart, asyncEnd per attempt, in order', async () => {
    const events: string[] = [];
    const messages: TokenRequestMessage[] = [];
    const on = (phase: string) => (m: unknown) => {
      events.push(phase);
      if (phase === 'asyncEnd') messages.push({ ...(m as TokenRequestMessage) });
    };
    const handlers = {
      start: on('start'),
      end: on('end'),
      asyncStart: on('asyncStart'),
      asyncEnd: on('asyncEnd'),
      error: on('error'),
    };
    diagnostics.tokenRequest.subscribe(handlers);
    try {
      let n = 0;
      server.override = () => (n++ === 0 ? { status: 503, body: 'busy' } : undefined);
      const m = manager();
      const token = await m.getToken({ subject: 'svc-a' });
      expect(server.issuer.tokenRequests).toBe(2);
      expect(events).toEqual([
        ...['start', 'end', 'error', 'asyncStart', 'asyncEnd'],
        ...['start', 'end', 'asyncStart', 'asyncEnd'],
      ]);
      expect(messages[0]).toMatchObject({
        grantType: 'client_credentials',
        requestGrantType: 'client_credentials',
        subject: 'svc-a',
        scope: 'read',
        tokenUrl: server.tokenUrl,
        method: 'POST',
        attempt: 1,
        outcome: 'failure',
        status: 503,
        errorType: 'KEYFOB_TOKEN_ENDPOINT',
      });
      expect(messages[1]).toMatchObject({ attempt: 2, outcome: 'success', status: 200, expiresIn: 3600 });
      const { fingerprint } = await import('@keyfob/core');
      expect(messages[1]!.fingerprint).toBe(fingerprint(token.accessToken));
    } finally {
      diagnostics.tokenRequest.unsubscribe(handlers);
    }
  });

  it('store failures and recoveries, 401 recoveries: payloads without secrets', async () => {
    const store = listen(DiagnosticsChannel.Store);
    const retries = listen(DiagnosticsChannel.UnauthorizedRetry);
    let broken = true;
    const m = manager(SECRET, {
      store: {
        get: async () => {
          if (broken) throw new Error(`redis down (password=${SECRET})`);
          return undefined;
        },
        set: async () => {},
        delete: async () => {},
      },
    });
    const token = await m.getToken();
    expect(store[0]).toMatchObject({ event: 'failure', operation: 'get' });
    expect(store[0]).toMatchObject({ reason: expect.stringContaining('[REDACTED]') });
    // The store is probed in the background (about a second later) and announced when it is back.
    const recovered = new Promise<unknown>((resolve) => {
      const fn = (m: unknown) => {
        if ((m as { event?: string }).event === 'recovery') {
          unsubscribe(DiagnosticsChannel.Store, fn);
          resolve(m);
        }
      };
      subscribe(DiagnosticsChannel.Store, fn);
    });
    broken = false;
    expect(await recovered).toEqual({ event: 'recovery', operation: 'probe' });
    publishUnauthorizedRetry({
      url: 'https://api.example.com/v1/things?key=abc',
      method: 'get',
      accessToken: token.accessToken,
      retried: true,
    });
    expect(retries).toEqual([
      {
        origin: 'https://api.example.com',
        method: 'GET',
        subject: undefined,
        scope: undefined,
        fingerprint: expect.any(String),
        retried: true,
      },
    ]);
    expect(leakScan([store, retries], [SECRET, token.accessToken])).toEqual([]);
  });

  it('the outgoing-request policy (every adapter) publishes each 401 recovery once', async () => {
    const retries = listen(DiagnosticsChannel.UnauthorizedRetry);
    const m = manager();
    const policy = new RequestPolicy(m, { origins: [server.origin] }, { name: 'test' });
    const url = `${server.apiUrl}/x`;
    const attempt = policy.start(url)!;
    await policy.headers(attempt, 'GET', url);
    expect(await policy.retry(attempt)).toBe(true);
    await policy.headers(attempt, 'GET', url);
    expect(await policy.retry(attempt)).toBe(false); // a second 401 goes to the caller
    expect(retries).toMatchObject([
      { retried: true, fingerprint: expect.stringMatching(/^[0-9a-f]{8}$/) },
      { retried: false },
    ]);
    expect(server.issuer.tokenRequests).toBe(2);
  });

  it('nothing is published, and no payload built, without a subscriber', async () => {
    expect(diagnostics.cacheLookup.hasSubscribers).toBe(false);
    expect(diagnostics.tokenRequest.start.hasSubscribers).toBe(false);
    const m = manager();
    await m.getToken();
    const lookups = listen(DiagnosticsChannel.CacheLookup);
    await m.getToken();
    expect(lookups).toEqual([
      expect.objectContaining({ result: 'hit', grantType: 'client_credentials', scope: 'read' }),
    ]);
  });
});

describe('a foreground failure: tokenFailed and one warn line, whatever the number of callers', () => {
  it('10 callers, wrong secret: one event, one structured log line (console-like: readable text)', async () => {
    const lines: string[] = [];
    const logger: KeyfobLogger = {
      warn: (m: string) => lines.push(m),
      error: (m: string) => lines.push(m),
      info: () => {},
      debug: () => {},
    };
    const m = manager('wrong-secret-zz99yy88', { logger, retries: 0 });
    const failed: unknown[] = [];
    m.on('tokenFailed', (e) => failed.push(e));
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => m.getToken()));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    const requests = server.issuer.tokenRequests;
    expect(failed).toHaveLength(1); // one acquisition (its Basic-encoding retry included)
    expect(failed[0]).toMatchObject({ grantType: 'client_credentials', scope: 'read' });
    expect((failed[0] as { error: { code: string } }).error.code).toBe('KEYFOB_TOKEN_ENDPOINT');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^keyfob: getting a token failed \(KEYFOB_TOKEN_ENDPOINT\)/);
    expect(lines[0]).toMatch(
      /\(code=KEYFOB_TOKEN_ENDPOINT grantType=client_credentials status=401 oauthError=invalid_client\)$/,
    );
    expect(requests).toBeGreaterThanOrEqual(1);
    expect(leakScan([lines, failed], ['wrong-secret-zz99yy88'])).toEqual([]);
    expect(m.status).toMatchObject({ consecutiveFailures: 1, endpointReachable: true });
    expect(m.status.failingSince).toBeTypeOf('number');
    expect(m.status.lastSuccessAt).toBeUndefined();
  });

  it('pino gets the fields as an object (fields first), winston as metadata (message first)', async () => {
    const pinoLines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        pinoLines.push(JSON.parse(String(chunk)));
        cb();
      },
    });
    const p = pino({ level: 'debug' }, sink);
    const winstonLines: Record<string, unknown>[] = [];
    const w = winston.createLogger({
      level: 'debug',
      transports: [
        new winston.transports.Stream({
          stream: new Writable({
            write(chunk, _enc, cb) {
              winstonLines.push(JSON.parse(String(chunk)));
              cb();
            },
          }),
          format: winston.format.json(),
        }),
      ],
    });
    const bad = 'wrong-secret-qq77ww66';
    await manager(bad, { logger: p, retries: 0 })
      .getToken()
      .catch(() => {});
    await manager(bad, { logger: w, retries: 0 })
      .getToken()
      .catch(() => {});
    const pw = pinoLines.find((l) => l.level === 40);
    expect(pw).toMatchObject({
      msg: expect.stringMatching(/^keyfob: getting a token failed/),
      code: 'KEYFOB_TOKEN_ENDPOINT',
      grantType: 'client_credentials',
      status: 401,
      oauthError: 'invalid_client',
    });
    const ww = winstonLines.find((l) => l.level === 'warn');
    expect(ww).toMatchObject({
      message: expect.stringMatching(/^keyfob: getting a token failed/),
      code: 'KEYFOB_TOKEN_ENDPOINT',
      status: 401,
    });
    // A successful fetch logs at debug with the token's fingerprint, never the token.
    const ok = manager(SECRET, { logger: p });
    const t = await ok.getToken();
    const debug = pinoLines.find((l) => l.level === 20 && String(l.msg).includes('obtained'));
    expect(debug).toMatchObject({ fingerprint: expect.stringMatching(/^[0-9a-f]{8}$/) });
    expect(leakScan([pinoLines, winstonLines], [bad, SECRET, t.accessToken])).toEqual([]);
    expect(ok.status).toMatchObject({ consecutiveFailures: 0, endpointReachable: true });
    expect(ok.status.lastSuccessAt).toBeTypeOf('number');
  });

  it('an unreachable endpoint: status says not reachable; a background failure is refreshFailed, not tokenFailed', async () => {
    const url = server.tokenUrl;
    let now = Date.now();
    const m = manager(SECRET, { clock: { now: () => now }, retries: 0 });
    await m.getToken();
    const failed: unknown[] = [];
    const refreshFailed: unknown[] = [];
    m.on('tokenFailed', (e) => failed.push(e));
    m.on('refreshFailed', (e) => refreshFailed.push(e));
    await server.close();
    now += 3_570_000; // refresh-ahead window: the current token is served, the renewal fails
    await m.getToken();
    await new Promise<void>((resolve) => {
      const off = m.on('refreshFailed', () => {
        off();
        resolve();
      });
      if (refreshFailed.length) resolve();
    });
    expect(failed).toHaveLength(0);
    expect(m.status.endpointReachable).toBe(false);
    expect(m.status.lastError?.code).toBe('KEYFOB_TOKEN_ENDPOINT_NETWORK');
    now += 100_000; // expired: the caller fails, once
    await expect(m.getToken()).rejects.toMatchObject({ code: 'KEYFOB_TOKEN_ENDPOINT_NETWORK' });
    expect(failed).toHaveLength(1);
    server = await genericClientCredentials({ clientId: CLIENT_ID, clientSecret: SECRET });
    expect(url).not.toBe('');
  });
});
