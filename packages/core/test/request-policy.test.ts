import { Readable } from 'node:stream';
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  ConfigurationError,
  customGrant,
  isKeyfobError,
  isReplayableBody,
  originOf,
  RequestPolicy,
  TokenManager,
} from '../src/index.js';

/** A real manager whose grant hands out at_1, at_2, ... (no network needed for the policy's decisions). */
function manager() {
  let n = 0;
  const calls: { subject: string | undefined; scope: string | undefined }[] = [];
  const tokens = new TokenManager({
    grant: customGrant(async (ctx) => {
      calls.push({ subject: ctx.subject, scope: ctx.scope });
      n++;
      return { access_token: `at_secret_${n}`, expires_in: 3600 };
    }),
  });
  return { tokens, calls };
}

const API = 'https://api.example.com';

describe('RequestPolicy: allowed origins', () => {
  it('no base URL and no origins is a ConfigurationError', () => {
    const { tokens } = manager();
    expect(() => new RequestPolicy(tokens, {}, { name: 'test' })).toThrow(ConfigurationError);
    expect(() => new RequestPolicy(tokens, { origins: [] }, { name: 'test' })).toThrow(/origins/);
    expect(() => new RequestPolicy(tokens, undefined, { name: 'test', baseUrl: '/relative' })).toThrow(
      ConfigurationError,
    );
    expect(() => new RequestPolicy(tokens, { origins: ['not a url'] }, { name: 'test' })).toThrow(
      /not an absolute http\(s\) URL/,
    );
    expect(() => new RequestPolicy(tokens, { origins: ['ftp://x.example'] }, { name: 'test' })).toThrow(
      ConfigurationError,
    );
  });

  it('base origin plus origins; exact scheme, host and port; host case-insensitive; default ports normalised', () => {
    const { tokens } = manager();
    const p = new RequestPolicy(
      tokens,
      { origins: ['http://127.0.0.1:8080/any/path', new URL('https://other.example.com')] },
      { name: 'test', baseUrl: `${API}/v1/` },
    );
    expect([...p.origins].sort()).toEqual(
      ['http://127.0.0.1:8080', 'https://api.example.com', 'https://other.example.com'].sort(),
    );
    expect(p.allows(`${API}/v1/things?x=1`)).toBe(true);
    expect(p.allows('https://API.Example.COM/x')).toBe(true);
    expect(p.allows('https://api.example.com:443/x')).toBe(true);
    expect(p.allows(new URL('https://api.example.com:443/x'))).toBe(true);
    expect(p.allows('http://api.example.com/x')).toBe(false);
    expect(p.allows('https://api.example.com:8443/x')).toBe(false);
    expect(p.allows('https://api.example.com.evil.test/x')).toBe(false);
    expect(p.allows('https://evil.test\\@api.example.com/x')).toBe(false);
    expect(p.allows('https://api.example.com@evil.test/x')).toBe(false);
    expect(p.allows('http://127.0.0.1:8080/x')).toBe(true);
    expect(p.allows('http://127.0.0.1:8081/x')).toBe(false);
    expect(p.allows('/relative')).toBe(false);
    expect(p.allows('//api.example.com/x')).toBe(false);
    expect(p.allows('')).toBe(false);
    expect(p.allows(' https://api.example.com/x')).toBe(true); // the URL parser trims it, so does fetch
    // Cached authority prefixes answer the same the second time.
    expect(p.allows('https://API.Example.COM/y')).toBe(true);
    expect(p.allows('https://evil.test\\@api.example.com/y')).toBe(false);
  });

  it('the same-authority fast path: only an authority that ends where the URL parser ends it', () => {
    const { tokens } = manager();
    const p = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    for (const [url, allowed] of [
      [`${API}/x`, true],
      [`${API}`, true],
      [`${API}?q=1`, true],
      [`${API}#f`, true],
      [`${API}.evil.test/x`, false],
      // WHATWG: '\\' ends the authority of an http(s) URL, so this one goes to api.example.com.
      [`${API}\\@evil.test/x`, true],
      [`${API}:8443/x`, false],
      [`${API}@evil.test/x`, false],
      [`${API}/y`, true],
      ['https://evil.test/x', false],
      ['https://evil.test/y', false],
      [`${API}/z`, true],
    ] as const) {
      expect([url, p.allows(url)]).toEqual([url, allowed]);
    }
  });

  it('originOf normalises like the URL parser and refuses non-http(s) URLs', () => {
    expect(originOf('HTTPS://Api.Example.com:443/a')).toBe('https://api.example.com');
    expect(originOf('http://[::1]:80/')).toBe('http://[::1]');
    expect(originOf('mailto:x@y')).toBeUndefined();
    expect(originOf('relative')).toBeUndefined();
  });
});

describe('RequestPolicy: per request', () => {
  it('start: skip and foreign origins get nothing; subject and scope resolve request > option', () => {
    const { tokens } = manager();
    const p = new RequestPolicy<{ user: string }>(
      tokens,
      { origins: [API], subject: (r) => r.user, scope: 'read' },
      { name: 'test' },
    );
    expect(p.start(`${API}/x`, { skip: true }, { user: 'u1' })).toBeUndefined();
    expect(p.start('https://elsewhere.example.com/x', undefined, { user: 'u1' })).toBeUndefined();
    const a = p.start(`${API}/x`, undefined, { user: 'u1' })!;
    expect([a.subject, a.scope]).toEqual(['u1', 'read']);
    const b = p.start(`${API}/x`, { subject: 'u2', scope: 'write' }, { user: 'u1' })!;
    expect([b.subject, b.scope]).toEqual(['u2', 'write']);
    expect(() => p.start(`${API}/x`, 'yes' as never)).toThrow(ConfigurationError);
  });

  it('headers: the manager`s cached Authorization, one shared map per token; per subject/scope tokens', async () => {
    const { tokens, calls } = manager();
    const p = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    const a = p.start(`${API}/x`)!;
    const h1 = await p.headers(a, 'GET', `${API}/x`);
    expect(h1).toEqual({ authorization: 'Bearer at_secret_1' });
    expect(a.sent).toBe(h1);
    const h2 = await p.headers(p.start(`${API}/y`)!, 'GET', `${API}/y`);
    expect(h2).toBe(h1);
    const c = p.start(`${API}/x`, { subject: 'alice', scope: 's' })!;
    expect(await p.headers(c, 'GET', `${API}/x`)).toEqual({ authorization: 'Bearer at_secret_2' });
    expect(calls).toEqual([
      { subject: undefined, scope: undefined },
      { subject: 'alice', scope: 's' },
    ]);
    await tokens.close();
  });

  it('headersNow: a promise until the cached header is known, then the map itself', async () => {
    const { tokens, calls } = manager();
    const p = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    const seen: unknown[] = [];
    for (let i = 0; i < 4; i++) {
      const now = p.headersNow(p.start(`${API}/x`)!, 'GET', `${API}/x`);
      seen.push(now instanceof Promise ? 'promise' : now);
      await now;
    }
    // The first call waits for the token, the second gets the cached entry's promise (not seen
    // settled yet), from then on the map comes back synchronously.
    expect(seen.slice(0, 2)).toEqual(['promise', 'promise']);
    expect(seen.slice(2)).toEqual([
      { authorization: 'Bearer at_secret_1' },
      { authorization: 'Bearer at_secret_1' },
    ]);
    const a = p.start(`${API}/x`)!;
    const h = p.headersNow(a, 'GET', `${API}/x`);
    expect(a.sent).toBe(h);
    // After an invalidation the cached header is not used: a promise again, then the new token.
    expect(await p.retry(a)).toBe(true);
    const next = p.headersNow(a, 'GET', `${API}/x`);
    expect(next instanceof Promise).toBe(true);
    expect(await next).toEqual({ authorization: 'Bearer at_secret_2' });
    expect(calls).toHaveLength(2);
    await tokens.close();
  });

  it('headers: a token endpoint failure rejects with a KeyfobError; an aborted wait too', async () => {
    const tokens = new TokenManager({
      grant: customGrant(() => new Promise(() => {})),
    });
    const p = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    const ac = new AbortController();
    const pending = p.headers(p.start(`${API}/x`)!, 'GET', `${API}/x`, ac.signal);
    ac.abort();
    const error = await pending.catch((e: unknown) => e);
    expect(isKeyfobError(error)).toBe(true);
    await tokens.close();

    const failing = new TokenManager({
      grant: customGrant(async () => {
        throw new Error('boom');
      }),
    });
    const q = new RequestPolicy(failing, { origins: [API] }, { name: 'test' });
    const e2 = await q.headers(q.start(`${API}/x`)!, 'GET', `${API}/x`).catch((e: unknown) => e);
    expect(isKeyfobError(e2)).toBe(true);
    await failing.close();
  });

  it('headers: an already-aborted signal rejects with KEYFOB_ABORTED and starts no token request', async () => {
    let calls = 0;
    const tokens = new TokenManager({
      grant: customGrant(async () => {
        calls++;
        return { access_token: 'never-used-token', expires_in: 60 };
      }),
    });
    const p = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    const ac = new AbortController();
    ac.abort();
    const error = await p
      .headers(p.start(`${API}/x`)!, 'GET', `${API}/x`, ac.signal)
      .catch((e: unknown) => e);
    expect(isKeyfobError(error) && (error as { code?: string }).code).toBe('KEYFOB_ABORTED');
    expect(calls).toBe(0);
    // Closing now leaves no token request behind to fail unhandled.
    await tokens.close();
  });

  it('redirect: same or allowed origin keeps the headers; another origin strips them for good', async () => {
    const { tokens } = manager();
    const p = new RequestPolicy(tokens, { origins: [API, 'https://b.example.com'] }, { name: 'test' });
    const a = p.start(`${API}/x`)!;
    const h = await p.headers(a, 'GET', `${API}/x`);
    expect(p.redirect(a, 'GET', `${API}/moved`)).toBe(h);
    expect(p.redirect(a, 'GET', 'https://b.example.com/moved')).toBe(h);
    expect(p.redirect(a, 'GET', 'http://api.example.com/downgraded')).toBeUndefined();
    expect(a.sent).toBeUndefined();
    // Back on an allowed origin: the token does not come back on this hop.
    expect(p.redirect(a, 'GET', `${API}/back`)).toBeUndefined();
    // ... and a 401 at the end is not a 401 to keyfob's token.
    expect(p.rejected(a, 401)).toBe(false);
    // The client dropped the header itself (fetch across origins): a 401 then is not ours either.
    const b = p.start(`${API}/x`)!;
    await p.headers(b, 'GET', `${API}/x`);
    p.stripped(b);
    expect(p.rejected(b, 401)).toBe(false);
    await tokens.close();
  });

  it('rejected + retry: a 401 to the sent token invalidates exactly it and retries once', async () => {
    const { tokens, calls } = manager();
    const p = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    const a = p.start(`${API}/x`)!;
    await p.headers(a, 'GET', `${API}/x`);
    expect(p.rejected(a, 200)).toBe(false);
    expect(p.rejected(a, 403)).toBe(false);
    expect(p.rejected(a, 401, new Headers())).toBe(true);
    expect(p.willRetry(a, new ReadableStream())).toBe(false);
    expect(p.willRetry(a, 'body')).toBe(true);
    expect(await p.retry(a, 'body')).toBe(true);
    expect(p.willRetry(a, 'body')).toBe(false);
    expect(await p.headers(a, 'GET', `${API}/x`)).toEqual({ authorization: 'Bearer at_secret_2' });
    expect(p.rejected(a, 401)).toBe(true);
    // Second 401: the token is dropped again, but no second retry.
    expect(await p.retry(a, 'body')).toBe(false);
    expect(calls).toHaveLength(2);
    expect((await tokens.getToken()).accessToken).toBe('at_secret_3');
    await tokens.close();
  });

  it('a stale 401 does not drop a newer token (compare-and-delete)', async () => {
    const { tokens, calls } = manager();
    const p = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    const a = p.start(`${API}/x`)!;
    const b = p.start(`${API}/x`)!;
    await p.headers(a, 'GET', `${API}/x`);
    await p.headers(b, 'GET', `${API}/x`);
    expect(await p.retry(a)).toBe(true);
    expect(await p.retry(b)).toBe(true);
    await p.headers(a, 'GET', `${API}/x`);
    await p.headers(b, 'GET', `${API}/x`);
    expect(calls).toHaveLength(2);
    await tokens.close();
  });

  it('retryOn401: false neither invalidates nor retries', async () => {
    const { tokens, calls } = manager();
    const p = new RequestPolicy(tokens, { origins: [API], retryOn401: false }, { name: 'test' });
    const a = p.start(`${API}/x`)!;
    await p.headers(a, 'GET', `${API}/x`);
    expect(p.rejected(a, 401)).toBe(false);
    await p.headers(p.start(`${API}/x`)!, 'GET', `${API}/x`);
    expect(calls).toHaveLength(1);
    await tokens.close();
  });

  it('a non-replayable body: the token is invalidated, the request is not retried', async () => {
    const { tokens, calls } = manager();
    const p = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    const a = p.start(`${API}/x`)!;
    await p.headers(a, 'POST', `${API}/x`);
    expect(await p.retry(a, Readable.from(['x']))).toBe(false);
    await p.headers(p.start(`${API}/x`)!, 'GET', `${API}/x`);
    expect(calls).toHaveLength(2);
    await tokens.close();
  });

  it('nothing secret in the printed policy or attempt', async () => {
    const { tokens } = manager();
    const p = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    const a = p.start(`${API}/x`)!;
    await p.headers(a, 'GET', `${API}/x`);
    for (const text of [
      inspect(a, { depth: 9, showHidden: true }),
      JSON.stringify(a),
      inspect(p),
      JSON.stringify(p),
    ]) {
      expect(text).not.toContain('at_secret');
    }
    await tokens.close();
  });
});

describe('isReplayableBody', () => {
  it('strings, forms, blobs and buffers yes; streams and iterators no', () => {
    const yes = [
      undefined,
      null,
      'x',
      new URLSearchParams('a=1'),
      new FormData(),
      new Blob(['x']),
      new ArrayBuffer(2),
      new Uint8Array(2),
      Buffer.from('x'),
      new DataView(new ArrayBuffer(1)),
      { json: true },
      [1, 2],
    ];
    const no = [new ReadableStream(), Readable.from(['x']), (async function* () {})(), (function* () {})()];
    for (const b of yes) expect(isReplayableBody(b)).toBe(true);
    for (const b of no) expect(isReplayableBody(b)).toBe(false);
  });
});

describe('RequestPolicy: DPoP nonces on any response', () => {
  const nonceOf = (proof: string | undefined) =>
    JSON.parse(Buffer.from(proof!.split('.')[1]!, 'base64url').toString()).nonce as string | undefined;

  it('a DPoP-Nonce on a 200 (RFC 9449 9: a server may rotate it at any time) goes into the next proof for that origin', async () => {
    const tokens = new TokenManager({
      grant: customGrant(async () => ({ access_token: 'at_dpop_1', token_type: 'DPoP', expires_in: 3600 })),
      dpop: true,
    });
    const policy = new RequestPolicy(tokens, { origins: [API] }, { name: 'test' });
    const first = policy.start(`${API}/items`)!;
    const sent = await policy.headers(first, 'GET', `${API}/items`);
    expect(sent.authorization).toBe('DPoP at_dpop_1');
    expect(nonceOf(sent.dpop)).toBeUndefined();
    expect(policy.rejected(first, 200, new Headers({ 'dpop-nonce': 'nonce-from-a-200' }))).toBe(false);
    const next = policy.start(`${API}/other`)!;
    expect(nonceOf((await policy.headers(next, 'POST', `${API}/other`)).dpop)).toBe('nonce-from-a-200');
    // A plain-object header map works the same; a later nonce replaces it.
    expect(policy.rejected(next, 204, { 'dpop-nonce': 'nonce-from-a-204' })).toBe(false);
    const third = policy.start(`${API}/x`)!;
    expect(nonceOf((await policy.headers(third, 'GET', `${API}/x`)).dpop)).toBe('nonce-from-a-204');
    await tokens.close();
  });
});
