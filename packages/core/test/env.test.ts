import { inspect } from 'node:util';
import { genericClientCredentials, riskCloud } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigurationError, ErrorCode, optionsFromEnv, TokenManager } from '../src/index.js';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const SECRET = 'env-secret-Zq9+/=';

function failure(fn: () => unknown): ConfigurationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigurationError);
    return e as ConfigurationError;
  }
  throw new Error('expected optionsFromEnv to throw');
}

describe('optionsFromEnv', () => {
  it('builds client-credentials options that get a token from the generic provider', async () => {
    const server = await genericClientCredentials({ clientId: 'svc', clientSecret: SECRET });
    cleanup.push(() => server.close());
    const options = optionsFromEnv({
      KEYFOB_TOKEN_URL: server.tokenUrl,
      KEYFOB_CLIENT_ID: 'svc',
      KEYFOB_CLIENT_SECRET: SECRET,
      KEYFOB_SCOPE: '  read   write ', // sent as 'read write' (RFC 6749 3.3: single spaces)
      KEYFOB_AUDIENCE: 'https://api.example.com',
    });
    const tokens = new TokenManager(options);
    cleanup.push(() => tokens.close());
    const token = await tokens.getToken();
    expect(token.scope).toBe('read write');
    const req = server.tokenRequests()[0]!;
    expect(req.params).toMatchObject({
      grant_type: 'client_credentials',
      scope: 'read write',
      audience: 'https://api.example.com',
    });
    expect(req.headers.authorization).toMatch(/^Basic /);
    expect(JSON.stringify(options)).not.toContain(SECRET);
    expect(inspect(options, { depth: 5 })).not.toContain(SECRET);
  });

  it('honours KEYFOB_CLIENT_AUTH (case-insensitive) and a custom prefix', async () => {
    const server = await riskCloud({ clientId: 'rc', clientSecret: SECRET });
    cleanup.push(() => server.close());
    const tokens = new TokenManager(
      optionsFromEnv(
        {
          RC_TOKEN_URL: server.tokenUrl,
          RC_CLIENT_ID: 'rc',
          RC_CLIENT_SECRET: SECRET,
          RC_CLIENT_AUTH: 'Basic-Only',
        },
        { prefix: 'RC_' },
      ),
    );
    cleanup.push(() => tokens.close());
    expect((await tokens.getToken()).scope).toBe('read write');
    expect(server.tokenRequests()[0]!.body).toBe('');
  });

  it('names every missing variable at once', () => {
    const e = failure(() => optionsFromEnv({}));
    expect(e.code).toBe(ErrorCode.Configuration);
    expect(e.message).toContain('KEYFOB_ISSUER or KEYFOB_TOKEN_URL is missing');
    expect(e.message).toContain('KEYFOB_CLIENT_ID is missing');
    expect(e.message).toContain('KEYFOB_CLIENT_SECRET is missing');
  });

  it('treats empty values as missing, with the prefix in the names', () => {
    const e = failure(() =>
      optionsFromEnv(
        { APP_TOKEN_URL: 'https://a.example/t', APP_CLIENT_ID: ' ', APP_CLIENT_SECRET: '' },
        { prefix: 'APP_' },
      ),
    );
    expect(e.message).toContain('APP_CLIENT_ID is missing');
    expect(e.message).toContain('APP_CLIENT_SECRET is missing');
    expect(e.message).not.toContain('APP_TOKEN_URL');
  });

  it('names every malformed variable at once and never echoes the secret or a URL', () => {
    const env = {
      KEYFOB_ISSUER: 'not a url',
      KEYFOB_TOKEN_URL: 'https://svc:hunter2@auth.example.com/token',
      KEYFOB_CLIENT_ID: 'svc',
      KEYFOB_CLIENT_SECRET: SECRET,
      KEYFOB_CLIENT_AUTH: 'mtls',
      KEYFOB_SCOPE: 'read\nwrite',
    };
    const e = failure(() => optionsFromEnv(env));
    expect(e.message).toContain('KEYFOB_ISSUER is not an absolute URL');
    expect(e.message).toContain('KEYFOB_TOKEN_URL contains credentials');
    expect(e.message).toContain(
      "KEYFOB_CLIENT_AUTH 'mtls' is not one of basic, body, json, basic-only, client_secret_jwt",
    );
    expect(e.message).toContain('KEYFOB_SCOPE contains characters');
    for (const text of [e.message, JSON.stringify(e), inspect(e), String(e.hint)]) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain('not a url');
      expect(text).not.toContain('hunter2');
    }
  });

  it('rejects a URL with another protocol', () => {
    const e = failure(() =>
      optionsFromEnv({
        KEYFOB_TOKEN_URL: 'ftp://auth.example.com/t',
        KEYFOB_CLIENT_ID: 'a',
        KEYFOB_CLIENT_SECRET: 'b',
      }),
    );
    expect(e.message).toContain('KEYFOB_TOKEN_URL has protocol ftp:');
  });

  it('rejects plain http to a non-loopback host, naming the variable; loopback http is fine', () => {
    for (const name of ['KEYFOB_TOKEN_URL', 'KEYFOB_ISSUER']) {
      const e = failure(() =>
        optionsFromEnv({
          [name]: 'http://auth.example.com/t',
          KEYFOB_CLIENT_ID: 'a',
          KEYFOB_CLIENT_SECRET: 'b',
        }),
      );
      expect(e.message).toContain(`${name} is plain http`);
    }
    const local = optionsFromEnv({
      KEYFOB_TOKEN_URL: 'http://127.0.0.1:8080/t',
      KEYFOB_CLIENT_ID: 'a',
      KEYFOB_CLIENT_SECRET: 'b',
    });
    expect(local.tokenUrl).toBe('http://127.0.0.1:8080/t');
  });

  it('maps KEYFOB_ISSUER to issuer', () => {
    const options = optionsFromEnv({
      KEYFOB_ISSUER: 'https://auth.example.com',
      KEYFOB_CLIENT_ID: 'svc',
      KEYFOB_CLIENT_SECRET: SECRET,
    });
    expect(options.issuer).toBe('https://auth.example.com');
    expect(options.tokenUrl).toBeUndefined();
    expect(options.grant.clientId).toBe('svc');
  });

  it('reads process.env by default', () => {
    const saved = { ...process.env };
    try {
      process.env.KEYFOB_TOKEN_URL = 'https://auth.example.com/token';
      process.env.KEYFOB_CLIENT_ID = 'from-process';
      process.env.KEYFOB_CLIENT_SECRET = SECRET;
      expect(optionsFromEnv().grant.clientId).toBe('from-process');
    } finally {
      for (const k of ['KEYFOB_TOKEN_URL', 'KEYFOB_CLIENT_ID', 'KEYFOB_CLIENT_SECRET']) {
        if (saved[k] === undefined) delete process.env[k];
        else process.env[k] = saved[k];
      }
    }
  });
});
