import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { genericClientCredentials, startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import {
  authorizationCode,
  basicAuthorization,
  ConfigurationError,
  clientCredentials,
  LoginRequiredError,
  MemoryTokenStore,
  passwordGrant,
  redact,
  staticToken,
  TokenManager,
} from '../src/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

describe('configuration errors at construction', () => {
  const grant = clientCredentials({ clientId: 'id', clientSecret: 'secret' });
  it.each([
    [{ grant }, /tokenUrl is required/],
    [{ tokenUrl: 'http://auth.example.com/token', grant }, /not https/],
    [{ tokenUrl: 'not a url', grant }, /not an absolute URL/],
    [{ tokenUrl: 'https://user:pw@auth.example.com/token', grant }, /must not contain credentials/],
    [{ tokenUrl: 'https://auth.example.com/token' }, /grant is required/],
    [{ tokenUrl: 'https://auth.example.com/token', grant, timeoutMs: -1 }, /timeoutMs/],
  ])('%#', (options, message) => {
    expect(() => new TokenManager(options as never)).toThrow(ConfigurationError);
    expect(() => new TokenManager(options as never)).toThrow(message);
  });

  it('grants validate their own options', () => {
    expect(() => clientCredentials({ clientId: 'id', clientSecret: '' })).toThrow(/clientSecret is required/);
    expect(() =>
      clientCredentials({ clientId: 'id', clientSecret: 's', clientAuth: 'digest' as never }),
    ).toThrow(/clientAuth/);
    expect(() => passwordGrant({ username: 'u', password: '' })).toThrow(/password is required/);
    expect(() => staticToken({ accessToken: '' })).toThrow(/accessToken is required/);
    expect(() =>
      authorizationCode({ clientId: 'c', redirectUri: 'x', authorizeUrl: 'https://a/authorize' }),
    ).toThrow(/redirectUri/);
  });

  it('allows loopback http and opt-in http', () => {
    expect(() => new TokenManager({ tokenUrl: 'http://127.0.0.1:1/token', grant })).not.toThrow();
    expect(() => new TokenManager({ tokenUrl: 'http://localhost:1/token', grant })).not.toThrow();
    expect(() => new TokenManager({ tokenUrl: 'http://[::1]:1/token', grant })).not.toThrow();
    expect(
      () => new TokenManager({ tokenUrl: 'http://auth.internal/token', grant, allowInsecureHttp: true }),
    ).not.toThrow();
  });
});

describe('client authentication encodings', () => {
  it('RFC 6749 2.3.1 form-encodes before base64; raw mode does not', () => {
    expect(basicAuthorization('a b', 'c:d+e', 'form')).toBe(
      `Basic ${Buffer.from('a+b:c%3Ad%2Be').toString('base64')}`,
    );
    expect(basicAuthorization('a b', 'c:d+e', 'raw')).toBe(
      `Basic ${Buffer.from('a b:c:d+e').toString('base64')}`,
    );
  });
});

describe('secrets never printed', () => {
  it('grants, managers and tokens hide secrets in JSON.stringify and util.inspect', async () => {
    const server = await genericClientCredentials({ clientId: 'id', clientSecret: 'the-client-secret' });
    cleanup.push(() => server.close());
    const grant = clientCredentials({ clientId: 'id', clientSecret: 'the-client-secret' });
    const m = new TokenManager({ tokenUrl: server.tokenUrl, grant });
    cleanup.push(() => m.close());
    const token = await m.getToken();
    const printed = [
      JSON.stringify(grant),
      inspect(grant),
      JSON.stringify(m),
      inspect(m),
      JSON.stringify(token),
      inspect(token, { depth: 5 }),
    ];
    for (const p of printed) {
      expect(p).not.toContain('the-client-secret');
      expect(p).not.toContain(token.accessToken);
    }
    expect(token.accessToken).toMatch(/^at_/); // the value itself is still usable
  });

  it('log lines are redacted and say what happened', async () => {
    const server = await genericClientCredentials({
      clientId: 'id',
      clientSecret: 'the-client-secret',
      expiresIn: 3600,
    });
    cleanup.push(() => server.close());
    const lines: string[] = [];
    const log = (m: string) => lines.push(m);
    const m = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'id', clientSecret: 'the-client-secret' }),
      logger: { debug: log, info: log, warn: log, error: log },
    });
    cleanup.push(() => m.close());
    const t = await m.getToken();
    await m.invalidate(t);
    await m.getToken();
    expect(lines.some((l) => l.includes('obtained'))).toBe(true);
    expect(lines.some((l) => l.includes('invalidated'))).toBe(true);
    for (const l of lines) {
      expect(l).not.toContain('the-client-secret');
      expect(l).not.toContain(t.accessToken);
    }
  });

  it('redact() strips bearer/basic headers and OAuth fields', () => {
    const out = redact(
      'Authorization: Bearer abc.def.ghi Basic dXNlcjpwYXNz {"access_token":"tok","refresh_token":"r"} client_secret=s3&x=1 https://u:p@h/x',
      ['extra-secret'],
    );
    expect(out).not.toMatch(/abc\.def|dXNlcjpwYXNz|"tok"|"r"|s3&|u:p@/);
  });
});

describe('MemoryTokenStore', () => {
  it('is bounded: least recently used entries go first', () => {
    const store = new MemoryTokenStore({ maxEntries: 100 });
    for (let i = 0; i < 100; i++) store.set(`k${i}`, { accessToken: `t${i}`, tokenType: 'Bearer' }, 60_000);
    store.get('k0'); // recently used
    for (let i = 100; i < 150; i++) store.set(`k${i}`, { accessToken: `t${i}`, tokenType: 'Bearer' }, 60_000);
    expect(store.size).toBe(100);
    expect(store.get('k0')?.accessToken).toBe('t0');
    expect(store.get('k1')).toBeUndefined();
    expect(store.get('k149')?.accessToken).toBe('t149');
  });

  it('expires entries and compare-and-deletes', () => {
    let now = 0;
    const store = new MemoryTokenStore({ now: () => now });
    store.set('a', { accessToken: 'x', tokenType: 'Bearer' }, 1000);
    expect(store.delete('a', 'other')).toBe(false);
    expect(store.get('a')?.accessToken).toBe('x');
    now = 1000;
    expect(store.get('a')).toBeUndefined();
  });

  it('a TokenManager with a memory store shares tokens with a second manager (restart)', async () => {
    const server = await genericClientCredentials({ clientId: 'id', clientSecret: 'secret' });
    cleanup.push(() => server.close());
    const store = new MemoryTokenStore();
    const opts = {
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'id', clientSecret: 'secret' }),
      store,
    };
    const a = new TokenManager(opts);
    const t = await a.getToken();
    await a.close();
    const b = new TokenManager(opts);
    cleanup.push(() => b.close());
    expect((await b.getToken()).accessToken).toBe(t.accessToken);
    expect(server.tokenRequests()).toHaveLength(1);
  });

  it('the manager cache is bounded for per-user tokens too', async () => {
    const server = await genericClientCredentials({ clientId: 'id', clientSecret: 'secret' });
    cleanup.push(() => server.close());
    const m = new TokenManager({
      tokenUrl: server.tokenUrl,
      grant: clientCredentials({ clientId: 'id', clientSecret: 'secret' }),
      maxEntries: 10,
    });
    cleanup.push(() => m.close());
    for (let i = 0; i < 30; i++) await m.getToken({ scope: `s${i}` });
    expect(m.size).toBe(10);
  });
});

describe('authorization code: PKCE, per-subject sets, refresh with rotation', () => {
  async function authServer() {
    let n = 0;
    const refreshTokens = new Map<string, string>(); // refresh token -> subject
    const codes = new Map<string, { subject: string; challenge: string }>();
    const server = await startServer((req) => {
      const p = req.params;
      if (p.grant_type === 'authorization_code') {
        const c = codes.get(p.code ?? '');
        codes.delete(p.code ?? '');
        if (!c)
          return { status: 400, body: { error: 'invalid_grant', error_description: 'code already used' } };
        const challenge = createHash('sha256')
          .update(p.code_verifier ?? '')
          .digest('base64url');
        if (challenge !== c.challenge)
          return { status: 400, body: { error: 'invalid_grant', error_description: 'PKCE mismatch' } };
        const rt = `rt-${++n}`;
        refreshTokens.set(rt, c.subject);
        return {
          body: {
            access_token: `at-${c.subject}-${n}`,
            refresh_token: rt,
            expires_in: 60,
            token_type: 'bearer',
          },
        };
      }
      if (p.grant_type === 'refresh_token') {
        const subject = refreshTokens.get(p.refresh_token ?? '');
        refreshTokens.delete(p.refresh_token ?? ''); // rotation: one use only
        if (!subject)
          return { status: 400, body: { error: 'invalid_grant', error_description: 'refresh token reused' } };
        const rt = `rt-${++n}`;
        refreshTokens.set(rt, subject);
        return { body: { access_token: `at-${subject}-${n}`, refresh_token: rt, expires_in: 60 } };
      }
      return { status: 400, body: { error: 'unsupported_grant_type' } };
    });
    cleanup.push(() => server.close());
    return { server, codes, refreshTokens };
  }

  it('login, per-user tokens, renewal with the rotated refresh token, login required when it fails', async () => {
    const { server, codes, refreshTokens } = await authServer();
    const grant = authorizationCode({
      clientId: 'web',
      clientSecret: 'web-secret',
      redirectUri: 'http://127.0.0.1/cb',
      authorizeUrl: `${server.url}/authorize`,
      scope: 'openid offline_access',
    });
    let now = Date.now();
    const m = new TokenManager({ tokenUrl: `${server.url}/token`, grant, clock: { now: () => now } });
    cleanup.push(() => m.close());
    const login = (subject: string) => {
      const req = grant.authorizationUrl({ extraParams: { login_hint: subject } });
      const url = new URL(req.url);
      expect(url.searchParams.get('code_challenge_method')).toBe('S256');
      expect(url.searchParams.get('scope')).toBe('openid offline_access');
      codes.set(`code-${subject}`, { subject, challenge: url.searchParams.get('code_challenge')! });
      return grant.exchange(`code-${subject}`, { subject, codeVerifier: req.codeVerifier! });
    };
    const alice = await login('alice');
    const bob = await login('bob');
    expect((await m.getToken({ subject: 'alice' })).accessToken).toBe(alice.accessToken);
    expect((await m.getToken({ subject: 'bob' })).accessToken).toBe(bob.accessToken);
    await expect(m.getToken({ subject: 'carol' })).rejects.toBeInstanceOf(LoginRequiredError);
    await expect(grant.exchange('code-alice', { subject: 'alice', codeVerifier: 'x' })).rejects.toMatchObject(
      {
        status: 400,
        error: 'invalid_grant',
      },
    );

    // Expiry: renewed with the refresh token, once, even with concurrent callers.
    now += 61_000;
    const renewed = await Promise.all(Array.from({ length: 20 }, () => m.getToken({ subject: 'alice' })));
    expect(new Set(renewed.map((t) => t.accessToken)).size).toBe(1);
    expect(renewed[0]!.accessToken).not.toBe(alice.accessToken);
    expect(server.requests.filter((r) => r.params.grant_type === 'refresh_token')).toHaveLength(1);

    // A 401 on a user token renews with the (rotated) refresh token instead of forcing a login.
    await m.invalidate(renewed[0]!);
    const again = await m.getToken({ subject: 'alice' });
    expect(again.accessToken).not.toBe(renewed[0]!.accessToken);
    expect(server.requests.filter((r) => r.params.grant_type === 'refresh_token')).toHaveLength(2);

    // Refresh token revoked server-side: the next renewal asks for a login.
    refreshTokens.clear();
    now += 61_000;
    await expect(m.getToken({ subject: 'alice' })).rejects.toBeInstanceOf(LoginRequiredError);
    await expect(m.getToken({ subject: 'alice' })).rejects.toBeInstanceOf(LoginRequiredError);
    await m.deleteToken({ subject: 'bob' });
    await expect(m.getToken({ subject: 'bob' })).rejects.toBeInstanceOf(LoginRequiredError);
  });

  it('exchange before the grant is given to a manager is a ConfigurationError', async () => {
    const grant = authorizationCode({
      clientId: 'c',
      redirectUri: 'http://127.0.0.1/cb',
      authorizeUrl: 'https://a.example/authorize',
    });
    await expect(grant.exchange('code', { codeVerifier: 'v' })).rejects.toBeInstanceOf(ConfigurationError);
  });
});

describe('process lifetime', () => {
  it('timers never keep the process alive, and close() leaves nothing running', () => {
    const script = `
      import { TokenManager, customGrant } from ${JSON.stringify(fileURLToPath(new URL('../src/index.ts', import.meta.url)))};
      const m = new TokenManager({ grant: customGrant(async () => ({ access_token: 'x', expires_in: 2 })), retries: 5 });
      await m.getToken();
      await m.getToken();
      console.log('ok');
    `;
    const tsx = fileURLToPath(new URL('../../../node_modules/.bin/tsx', import.meta.url));
    const r = spawnSync(tsx, ['--eval', script, '--input-type=module'], {
      timeout: 15_000,
      encoding: 'utf8',
    });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('ok');
    expect(r.status).toBe(0);
  });
});
