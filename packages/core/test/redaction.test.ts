import { inspect } from 'node:util';
import { type RecordedRequest, type Reply, rejection, startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  clientCredentials,
  customGrant,
  normaliseTokenResponse,
  passwordGrant,
  REDACTED,
  type RefreshFailedEvent,
  redact,
  redactSecrets,
  TokenManager,
  TokenResponseError,
} from '../src/index.js';

const PASSWORD = 'pw-Echoed-9137';
const SECRET = 'secret-Echoed-5521';
const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

async function endpoint(replies: Reply[]) {
  let n = 0;
  const server = await startServer(() => replies[Math.min(n++, replies.length - 1)] as Reply);
  cleanup.push(() => server.close());
  return server;
}

function capture() {
  const lines: string[] = [];
  const push = (m: string) => lines.push(m);
  return { lines, logger: { debug: push, info: push, warn: push, error: push } };
}

const echo = {
  error: 'invalid_request',
  error_description: `client_secret=${SECRET} password ${PASSWORD} not accepted`,
};

describe('redaction with the request secrets on every path', () => {
  it('200 + OAuth error echoing client secret and password: not in the error, the log or the refreshFailed event', async () => {
    const server = await endpoint([
      { body: { access_token: 'tok-first-0001', token_type: 'Bearer', expires_in: 3600 } },
      { body: echo },
    ]);
    let now = 1_000_000;
    const { lines, logger } = capture();
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: passwordGrant({ username: 'u', password: PASSWORD, clientId: 'c', clientSecret: SECRET }),
      clock: { now: () => now },
      logger,
      retryBaseDelayMs: 5,
    });
    cleanup.push(() => m.close());
    const failed = new Promise<RefreshFailedEvent>((resolve) => m.on('refreshFailed', resolve));
    expect((await m.getToken()).accessToken).toBe('tok-first-0001');
    now += 3_590_000; // inside the refresh margin: served, renewed in the background
    expect((await m.getToken()).accessToken).toBe('tok-first-0001');
    const event = await failed;
    expect(event.error).toBeInstanceOf(TokenResponseError);
    expect(event.error.message).toContain('invalid_request');
    const texts = [
      event.error.message,
      JSON.stringify(event),
      inspect(event, { depth: 6 }),
      String(event.error.stack),
      ...lines,
    ];
    expect(lines.length).toBeGreaterThan(0);
    for (const t of texts) {
      expect(t).not.toContain(SECRET);
      expect(t).not.toContain(PASSWORD);
    }
  });

  it('200 + OAuth error to a foreground request: the error quotes no secret', async () => {
    const server = await endpoint([{ body: echo }]);
    const { lines, logger } = capture();
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: clientCredentials({ clientId: 'c', clientSecret: SECRET }),
      logger,
    });
    cleanup.push(() => m.close());
    const err = await rejection(m.getToken());
    expect(err).toBeInstanceOf(TokenResponseError);
    for (const t of [String(err), JSON.stringify(err), inspect(err), ...lines]) {
      expect(t).not.toContain(SECRET);
    }
    expect(String(err)).toContain(REDACTED);
  });

  it.each([
    ['CR LF', 'tok\r\nX-Injected: 1'],
    ['NUL', 'tok\u0000rest'],
  ])('%s in access_token is a TokenResponseError and nothing is cached', async (_n, token) => {
    const server = await endpoint([
      { body: { access_token: token, token_type: 'Bearer', expires_in: 3600 } },
    ]);
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: clientCredentials({ clientId: 'c', clientSecret: SECRET }),
    });
    cleanup.push(() => m.close());
    expect(await rejection(m.getToken())).toBeInstanceOf(TokenResponseError);
    expect(await rejection(m.getToken())).toBeInstanceOf(TokenResponseError);
    expect(server.requests).toHaveLength(2);
  });

  it('CR in token_type is a TokenResponseError', async () => {
    const server = await endpoint([
      { body: { access_token: 'tok-ok-1234', token_type: 'Bearer\r\nX: y', expires_in: 3600 } },
    ]);
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: clientCredentials({ clientId: 'c', clientSecret: SECRET }),
    });
    cleanup.push(() => m.close());
    const err = await rejection(m.getToken());
    expect(err).toBeInstanceOf(TokenResponseError);
    expect(String(err)).toMatch(/control character/);
  });
});

describe('a token endpoint echoing the credentials in the form they travelled in', () => {
  // `+ / = : % @` and a space: the form-urlencoded, percent-encoded, JSON-escaped and raw forms all differ.
  const ID = 'client-Echo-42';
  const TRICKY = 'p@ss+w/rd=:% x"9';
  const encodings = (v: string) => [
    v,
    new URLSearchParams({ v }).toString().slice(2),
    encodeURIComponent(v),
    JSON.stringify(v).slice(1, -1),
  ];

  async function failure(
    clientAuth: 'basic' | 'basic-only' | 'body' | 'json',
    basicEncoding: 'form' | undefined,
    echo: (req: RecordedRequest) => string,
  ) {
    const server = await startServer((req) => ({
      status: 401,
      body: { error: 'invalid_client', error_description: `rejected: ${echo(req)}` },
    }));
    cleanup.push(() => server.close());
    const { lines, logger } = capture();
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: clientCredentials({
        clientId: ID,
        clientSecret: TRICKY,
        clientAuth,
        ...(basicEncoding ? { basicEncoding } : {}),
      }),
      logger,
      retries: 0,
    });
    cleanup.push(() => m.close());
    const err = (await rejection(m.getToken())) as Error;
    expect(err).toMatchObject({ status: 401, error: 'invalid_client' });
    return [err.message, JSON.stringify(err), inspect(err, { depth: 6 }), String(err.stack), ...lines].join(
      '\n',
    );
  }

  const forbidden = (req: RecordedRequest) => {
    const auth = req.headers.authorization ?? '';
    const b64 = auth.replace(/^Basic /, '');
    return [...encodings(TRICKY), auth, b64, Buffer.from(b64, 'base64').toString('utf8')].filter(
      (v) => v.length >= 4,
    );
  };

  it.each([
    ['basic', 'form'],
    ['basic-only', 'form'],
    // Unset: a 401 to the form-encoded header is retried with the raw one; both are redacted.
    ['basic', undefined],
  ] as const)(
    '%s, basicEncoding %s: the Basic credentials (base64, decoded, and the form-encoded secret inside) are redacted',
    async (clientAuth, basicEncoding) => {
      let sent: string[] = [];
      let attempts = 0;
      const text = await failure(clientAuth, basicEncoding, (req) => {
        attempts++;
        sent = [...sent, ...forbidden(req)];
        const b64 = (req.headers.authorization ?? '').replace(/^Basic /, '');
        const decoded = Buffer.from(b64, 'base64').toString('utf8');
        return `${b64} / ${decoded} / secret ${decoded.slice(decoded.indexOf(':') + 1)}`;
      });
      expect(attempts).toBe(basicEncoding === undefined ? 2 : 1);
      expect(sent.length).toBeGreaterThan(3);
      for (const v of sent) expect(text).not.toContain(v);
      expect(text).toContain(REDACTED);
    },
  );

  it.each(['body', 'json'] as const)(
    '%s: the secret as the body carried it (form-encoded, JSON-escaped) is redacted',
    async (clientAuth) => {
      const text = await failure(clientAuth, undefined, (req) => {
        // The secret exactly as the body carried it: form-urlencoded, or JSON-escaped.
        const sent =
          clientAuth === 'body'
            ? /(?:^|&)client_secret=([^&]*)/.exec(req.body)?.[1]
            : /"client_secret"\s*:\s*"((?:[^"\\]|\\.)*)"/.exec(req.body)?.[1];
        expect(sent).toBe(encodings(TRICKY)[clientAuth === 'body' ? 1 : 3]);
        return `you sent ${sent} and ${req.params.client_secret}`;
      });
      for (const v of encodings(TRICKY)) expect(text).not.toContain(v);
      expect(text).toContain(REDACTED);
    },
  );
});

describe('a token response echoing a request secret, through the manager', () => {
  it.each([
    ['expires_in', { access_token: 'tok-echo-1234', expires_in: `x${PASSWORD}` }],
    ['token_type', { access_token: 'tok-echo-1234', token_type: SECRET, expires_in: 3600 }],
    ['expiration', { access_token: 'tok-echo-1234', expiration: PASSWORD }],
    ['a field name', { [SECRET]: 1 }],
  ])('%s: the error, the log line and the tokenFailed event quote neither secret', async (_w, body) => {
    const server = await endpoint([{ body }]);
    const { lines, logger } = capture();
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: passwordGrant({ username: 'u', password: PASSWORD, clientId: 'c', clientSecret: SECRET }),
      logger,
    });
    cleanup.push(() => m.close());
    const events: unknown[] = [];
    m.on('tokenFailed', (e) => events.push(e));
    const err = await rejection(m.getToken());
    expect(err).toBeInstanceOf(TokenResponseError);
    expect(String(err)).toContain(REDACTED);
    expect(lines.length).toBeGreaterThan(0);
    expect(events).toHaveLength(1);
    const texts = [String(err), JSON.stringify(err), inspect(err), ...lines, inspect(events, { depth: 6 })];
    for (const t of texts) {
      expect(t).not.toContain(SECRET);
      expect(t).not.toContain(PASSWORD);
    }
  });

  it('a token whose response echoes the client secret prints without it', async () => {
    const server = await endpoint([
      { body: { access_token: 'tok-echo-5678', expires_in: 3600, note: `client ${SECRET}` } },
    ]);
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: clientCredentials({ clientId: 'c', clientSecret: SECRET }),
    });
    cleanup.push(() => m.close());
    const token = await m.getToken();
    expect(token.raw.note).toBe(`client ${SECRET}`);
    expect(JSON.stringify(token)).not.toContain(SECRET);
    expect(inspect(token, { depth: 4 })).not.toContain(SECRET);
  });
});

describe('a token endpoint quoting the cached access token it is asked to replace', () => {
  it('a forced renewal refused with the current token in error_description: no error, log line or event shows it', async () => {
    const cached = 'at-cached-0123456789abcdef';
    const server = await endpoint([
      { body: { access_token: cached, token_type: 'Bearer', expires_in: 3600 } },
      {
        status: 400,
        body: { error: 'invalid_request', error_description: `token ${cached} is still active` },
      },
    ]);
    const { lines, logger } = capture();
    const m = new TokenManager({
      tokenUrl: `${server.url}/token`,
      grant: clientCredentials({ clientId: 'c', clientSecret: SECRET }),
      retries: 0,
      logger,
    });
    cleanup.push(() => m.close());
    const events: unknown[] = [];
    m.on('tokenFailed', (e) => events.push(e));
    m.on('refreshFailed', (e) => events.push(e));
    expect((await m.getToken()).accessToken).toBe(cached);
    const err = await rejection(m.getToken({ forceRefresh: true }));
    expect(String(err)).toContain('is still active');
    expect(String(err)).toContain(REDACTED);
    for (const t of [
      String(err),
      JSON.stringify(err),
      inspect(err, { depth: 6 }),
      ...lines,
      inspect(events, { depth: 6 }),
    ]) {
      expect(t).not.toContain(cached);
    }
  });
});

describe('redact()', () => {
  it('redactSecrets(): the given secrets in every wire form, and nothing else (a report keeps its code= and fields)', () => {
    const secret = 'p@ss+w/rd=:% x';
    const text = `code=KEYFOB_X access_token=visible ${secret} ${new URLSearchParams({ v: secret }).toString().slice(2)} ${encodeURIComponent(secret)}`;
    const out = redactSecrets(text, [secret]);
    expect(out).toBe(`code=KEYFOB_X access_token=visible ${REDACTED} ${REDACTED} ${REDACTED}`);
    expect(redact(text, [secret])).not.toContain('access_token=visible');
  });

  it('uses the exported placeholder', () => {
    expect(REDACTED).toBe('[REDACTED]');
    expect(redact(`x ${SECRET} y`, [SECRET])).toBe(`x ${REDACTED} y`);
  });

  it('hides a token field cut short, and one inside a JSON-quoted body', () => {
    expect(redact('{"access_token":"eyJhbGciOi')).toBe(`{"access_token":"${REDACTED}`);
    const quoted = redact(JSON.stringify('{"refresh_token":"rt-123456789","x":1}'));
    expect(quoted).not.toContain('rt-123456789');
  });

  it('hides code= as a parameter but leaves prose alone', () => {
    expect(redact('cb?code=abc123&state=s')).toBe(`cb?code=${REDACTED}&state=s`);
    expect(redact('status code=200')).toBe('status code=200');
  });
});

describe('normaliseTokenResponse quotes nothing secret', () => {
  const base = { requestedAt: 0, now: 0, defaultLifetimeMs: 60_000, maxLifetimeMs: 3_600_000 };
  it.each([
    ['a field name', { [`x-${SECRET}`]: 1 }],
    ['token_type', { access_token: 'tok-1234567', token_type: SECRET }],
    ['expires_in', { access_token: 'tok-1234567', expires_in: SECRET }],
    ['expiration', { access_token: 'tok-1234567', expiration: SECRET }],
    ['an OAuth error', { error: 'invalid_client', error_description: `bad ${SECRET}` }],
  ])('%s echoing a request secret is redacted', (_what, body) => {
    let err: unknown;
    try {
      normaliseTokenResponse(body, { ...base, secrets: [SECRET] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TokenResponseError);
    expect(inspect(err)).not.toContain(SECRET);
    expect(JSON.stringify(err)).not.toContain(SECRET);
  });
});

describe('a secret crossing a length limit of the quoted text', () => {
  // The secret starts a few characters before each cut, so a cut made before redaction would leave
  // most of it behind.
  const LONG = 'PLAINSECRETabcdefghijklmnop0123456789';
  const pad = (cut: number, lead = 'client_secret ') => 'p'.repeat(cut - lead.length - 5) + lead;
  const cases: [string, Reply][] = [
    [
      'error_description (300)',
      { status: 400, body: { error: 'invalid_request', error_description: pad(300) + LONG } },
    ],
    ['message (300)', { status: 400, body: { message: pad(300) + LONG } }],
    ['error (100)', { status: 401, body: { error: pad(100) + LONG } }],
    [
      'a text body (40)',
      { status: 500, headers: { 'content-type': 'text/plain' }, body: pad(40, ' ') + LONG },
    ],
    [
      'an HTML title (80)',
      {
        status: 502,
        headers: { 'content-type': 'text/html' },
        body: `<html><title>${pad(80, ' ')}${LONG}</title></html>`,
      },
    ],
    [
      'a 200 OAuth error (error 60, description 200)',
      { body: { error: pad(60, ' ') + LONG, error_description: pad(200) + LONG } },
    ],
    [
      'a 200 with a bad expires_in (30)',
      { body: { access_token: 'tok-cut-0001', expires_in: pad(30, ' ') + LONG } },
    ],
    [
      'a 200 with a bad expiration (40)',
      { body: { access_token: 'tok-cut-0001', expiration: pad(40, ' ') + LONG } },
    ],
    [
      'a 200 with an unknown token_type (20)',
      { body: { access_token: 'tok-cut-0001', token_type: `mac${LONG}` } },
    ],
  ];
  for (const [name, reply] of cases) {
    it(`${name}: no part of the secret survives`, async () => {
      const server = await endpoint([reply]);
      const m = new TokenManager({
        tokenUrl: `${server.url}/token`,
        grant: clientCredentials({ clientId: 'c', clientSecret: LONG, clientAuth: 'body' }),
        retries: 0,
      });
      cleanup.push(() => m.close());
      const error = await m.getToken().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error).toBeInstanceOf(Error);
      const texts = [
        error!.message,
        String(error!.stack),
        JSON.stringify(error),
        inspect(error, { depth: 6 }),
      ];
      for (const t of texts) expect(t).not.toContain(LONG.slice(0, 8));
      expect(error!.message).toContain(REDACTED.slice(0, 4));
    });
  }

  it('a customGrant error message over 300 characters: a token field crossing the cut is hidden', async () => {
    const m = new TokenManager({
      grant: customGrant(async () => {
        throw new Error(`${'x'.repeat(280)} {"access_token":"${LONG}"}`);
      }),
    });
    cleanup.push(() => m.close());
    const error = await m.getToken().then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).not.toContain(LONG.slice(0, 8));
  });

  it('percent-encoding in lower-case hex is redacted too', () => {
    const secret = 'a/b+c=d&e f';
    const lower = encodeURIComponent(secret).replace(/%[0-9A-F]{2}/g, (x) => x.toLowerCase());
    expect(lower).not.toBe(encodeURIComponent(secret));
    expect(redactSecrets(`got ${lower} here`, [secret])).toBe(`got ${REDACTED} here`);
  });
});
