import { createHash, createPublicKey, randomBytes, verify } from 'node:crypto';
import { clientCredentials, TokenManager } from '@keyfob/core';
import { type RecordedRequest, type Reply, startServer } from '@keyfob/testing';
import * as undici from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import { tokenInterceptor, withTokens } from '../src/index.js';

/**
 * DPoP (RFC 9449 9): a resource server that wants its nonce in every proof and hands out a new one
 * with every response it accepts (RFC 9449 8.2: the latest nonce wins). `RequestPolicy.rejected` is
 * called for every response of a hop that carried keyfob's headers, 200s and redirects included, so
 * each proof carries the latest nonce: one challenge in all, not one per request.
 */

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const CLIENT = { clientId: 'svc', clientSecret: 'svc-secret-value-123' };

const json = (part: string) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));

/** What the API saw of one request: its path, the nonce in its proof, and its answer. */
interface Seen {
  path: string;
  nonce: string | undefined;
  status: number;
}

async function setup() {
  const auth = await startServer(() => ({
    body: { access_token: `at_${randomBytes(16).toString('hex')}`, token_type: 'DPoP', expires_in: 3600 },
  }));
  cleanup.push(() => auth.close());
  let nonce = `n_${randomBytes(8).toString('hex')}`;
  const seen: Seen[] = [];
  const api = await startServer((req): Reply => {
    const reply = answer(req, api.url, nonce);
    seen.push({ path: req.path, nonce: reply.proofNonce, status: reply.status ?? 200 });
    if (reply.accepted) {
      // Accepted: a fresh nonce with the answer, whatever its status.
      nonce = `n_${randomBytes(8).toString('hex')}`;
      reply.headers = { ...reply.headers, 'dpop-nonce': nonce };
    }
    return reply;
  });
  cleanup.push(() => api.close());
  const manager = new TokenManager({
    tokenUrl: `${auth.url}/token`,
    grant: clientCredentials(CLIENT),
    dpop: true,
    retries: 0,
  });
  cleanup.push(() => manager.close());
  return { auth, api, manager, seen, tokenRequests: () => auth.requests.length };
}

/** The API: `Authorization: DPoP <token>` and a valid proof for this request with the current nonce. */
function answer(
  req: RecordedRequest,
  base: string,
  nonce: string,
): Reply & { accepted: boolean; proofNonce: string | undefined } {
  const refuse = (error: string) => ({
    status: 401,
    headers: { 'www-authenticate': `DPoP error="${error}"` },
    accepted: false,
    proofNonce: undefined,
  });
  const token = /^DPoP (.+)$/.exec(req.headers.authorization ?? '')?.[1];
  const proof = req.headers.dpop;
  if (token === undefined || typeof proof !== 'string') return refuse('invalid_token');
  const [h, p, s] = proof.split('.');
  const header = json(h!);
  const claims = json(p!);
  const key = createPublicKey({ key: header.jwk, format: 'jwk' });
  const signed = verify(
    'sha256',
    Buffer.from(`${h}.${p}`),
    { key, dsaEncoding: 'ieee-p1363' },
    Buffer.from(s!, 'base64url'),
  );
  const path = req.path.split('?')[0]!;
  if (
    !signed ||
    header.typ !== 'dpop+jwt' ||
    claims.htm !== req.method ||
    claims.htu !== `${base}${path}` ||
    claims.ath !== createHash('sha256').update(token).digest('base64url')
  ) {
    return refuse('invalid_dpop_proof');
  }
  if (claims.nonce !== nonce) {
    return {
      status: 401,
      headers: {
        'www-authenticate':
          'DPoP error="use_dpop_nonce", error_description="Resource server requires nonce in DPoP proof"',
        'dpop-nonce': nonce,
      },
      accepted: false,
      proofNonce: claims.nonce,
    };
  }
  if (path === '/go')
    return { status: 302, headers: { location: '/data' }, accepted: true, proofNonce: claims.nonce };
  return { body: { ok: true, path }, accepted: true, proofNonce: claims.nonce };
}

/** One way of sending a GET with keyfob's DPoP headers; resolves the final status. */
const BINDINGS: {
  name: string;
  make(manager: TokenManager, api: string): { get(url: string): Promise<number>; close?(): Promise<void> };
}[] = [
  {
    name: 'withTokens(fetch)',
    make(manager, api) {
      const send = withTokens(fetch, manager, { origins: [api] });
      return {
        async get(url) {
          const res = await send(url);
          await res.text();
          return res.status;
        },
      };
    },
  },
  {
    name: 'tokenInterceptor with undici.request (redirect interceptor after keyfob`s)',
    make(manager, api) {
      const dispatcher = new undici.Agent().compose(
        tokenInterceptor(manager, { origins: [api] }),
        undici.interceptors.redirect({ maxRedirections: 3 }),
      );
      return {
        async get(url) {
          const res = await undici.request(url, { dispatcher });
          await res.body.dump();
          return res.statusCode;
        },
        close: () => dispatcher.close(),
      };
    },
  },
  {
    name: 'tokenInterceptor with fetch(url, { dispatcher })',
    make(manager, api) {
      const dispatcher = new undici.Agent().compose(tokenInterceptor(manager, { origins: [api] }));
      return {
        async get(url) {
          const res = await fetch(url, { dispatcher } as RequestInit);
          await res.text();
          return res.status;
        },
        close: () => dispatcher.close(),
      };
    },
  },
];

for (const binding of BINDINGS) {
  describe(`DPoP nonce on every response: ${binding.name}`, () => {
    async function client() {
      const s = await setup();
      const c = binding.make(s.manager, s.api.url);
      if (c.close) cleanup.push(() => c.close!());
      return { ...s, get: c.get };
    }

    it('a nonce rotated on every 200: 3 sequential GETs cost 4 requests (one challenge)', async () => {
      const { api, seen, get, tokenRequests } = await client();
      for (let i = 0; i < 3; i++) expect(await get(`${api.url}/data`)).toBe(200);
      expect(seen.map((r) => r.status)).toEqual([401, 200, 200, 200]);
      expect(seen[0]!.nonce).toBeUndefined();
      // Each proof carries the nonce the previous answer gave, all different.
      expect(new Set(seen.slice(1).map((r) => r.nonce)).size).toBe(3);
      expect(tokenRequests()).toBe(1);
    });

    it('a nonce that comes with a redirect goes into the next hop`s proof', async () => {
      const { api, seen, get, tokenRequests } = await client();
      expect(await get(`${api.url}/data`)).toBe(200);
      expect(await get(`${api.url}/go`)).toBe(200);
      expect(seen.map((r) => `${r.status} ${r.path}`)).toEqual([
        '401 /data',
        '200 /data',
        '302 /go',
        '200 /data',
      ]);
      expect(tokenRequests()).toBe(1);
    });
  });
}
