import { readFileSync } from 'node:fs';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { recordingManager } from '@keyfob/testing';
import got from 'got';
import { afterEach, describe, expect, it } from 'vitest';
import { withTokens } from '../src/index.js';

/**
 * got with `http2: true` makes its requests through http2-wrapper (got's `request` function for HTTPS is
 * then `http2wrapper.auto`, which answers with a promise of the request). The certificate in
 * `fixtures/` is a self-signed one for 127.0.0.1, made for these tests only.
 */
const cert = readFileSync(new URL('./fixtures/localhost-cert.pem', import.meta.url));
const key = readFileSync(new URL('./fixtures/localhost-key.pem', import.meta.url));

const cleanup: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

/** An HTTP/2 API on 127.0.0.1 (HTTP/1.1 refused): 401 to any token but the one `valid` names. */
async function h2Api(valid: () => string | undefined) {
  const seen: { authorization: string | undefined; version: string }[] = [];
  const server: Http2SecureServer = createSecureServer({ cert, key }, (req, res) => {
    const authorization = req.headers.authorization;
    seen.push({ authorization, version: req.httpVersion });
    const ok = authorization !== undefined && authorization === `Bearer ${valid()}`;
    res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ ok }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const sessions = new Set<{ destroy(): void }>();
  server.on('session', (s) => sessions.add(s));
  cleanup.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  );
  return { url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

describe('withTokens over HTTP/2 (http2: true)', () => {
  it('the token goes on the HTTP/2 request; a 401 to it is retried once with a fresh one', async () => {
    const { tokens, issued } = recordingManager(cleanup);
    let accept = 0;
    const api = await h2Api(() => issued[accept]);
    const client = withTokens(
      got.extend({
        prefixUrl: api.url,
        http2: true,
        https: { certificateAuthority: cert },
        retry: { limit: 0 },
      }),
      tokens,
    );
    const first = await client.get('a').json<{ ok: boolean }>();
    expect(first.ok).toBe(true);
    // The API now accepts only the next token: keyfob's 401 retry must fetch and send it.
    accept = 1;
    const res = await client.get('b');
    expect(res.statusCode).toBe(200);
    expect(res.httpVersion).toBe('2.0');
    expect(api.seen.map((s) => s.version)).toEqual(['2.0', '2.0', '2.0']);
    expect(api.seen.map((s) => s.authorization)).toEqual([
      `Bearer ${issued[0]}`,
      `Bearer ${issued[0]}`,
      `Bearer ${issued[1]}`,
    ]);
    // got's own objects: its options and the response's printout hold no token.
    for (const t of issued) {
      expect(inspect(res.request.options, { depth: 4 })).not.toContain(t);
      expect(JSON.stringify(res.request.options)).not.toContain(t);
    }
  });
});
