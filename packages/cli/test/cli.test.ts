import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startAuthorizationServer } from '@keyfob/authorization-server';
import { airisk, genericClientCredentials, riskCloud, startServer } from '@keyfob/testing';
import { afterEach, describe, expect, it } from 'vitest';

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  while (cleanup.length) await cleanup.pop()!();
});

const cwd = fileURLToPath(new URL('..', import.meta.url));
const SECRET = 'cli-secret-Xy7+/=';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the real binary (src/bin.ts through tsx) in a child process with exactly `env` (plus PATH). */
function keyfob(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/bin.ts', ...args],
      { cwd, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 60_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function serve<T extends { close(): Promise<unknown> }>(p: Promise<T>): Promise<T> {
  const s = await p;
  cleanup.push(() => s.close());
  return s;
}

function issuedTokens(server: { issuer: { issued: Map<string, unknown> } }): string[] {
  return [...server.issuer.issued.keys()];
}

/** The three variables every check needs, the secret being SECRET. */
function envFor(tokenUrl: string, clientId: string): Record<string, string> {
  return { KEYFOB_TOKEN_URL: tokenUrl, KEYFOB_CLIENT_ID: clientId, KEYFOB_CLIENT_SECRET: SECRET };
}

function expectNoSecrets(r: Result, tokens: string[]) {
  for (const text of [r.stdout, r.stderr]) {
    expect(text).not.toContain(SECRET);
    for (const t of tokens) expect(text).not.toContain(t);
  }
}

describe('keyfob check', () => {
  it('Risk Cloud: basic-only, reports type, lifetime and scope, never the token', async () => {
    const server = await serve(riskCloud({ clientId: 'rc-client', clientSecret: SECRET }));
    const r = await keyfob(['check'], {
      KEYFOB_TOKEN_URL: server.tokenUrl,
      KEYFOB_CLIENT_ID: 'rc-client',
      KEYFOB_CLIENT_SECRET: SECRET,
      KEYFOB_CLIENT_AUTH: 'basic-only',
    });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('OK: a token came back');
    expect(r.stdout).toMatch(/token type\s+Bearer/);
    expect(r.stdout).toMatch(/lifetime\s+36\d days/);
    expect(r.stdout).toMatch(/scope granted\s+read write/);
    expect(r.stdout).toContain('opaque (not a JWT)');
    expect(server.tokenRequests()).toHaveLength(1);
    expect(issuedTokens(server)).toHaveLength(1);
    expectNoSecrets(r, issuedTokens(server));
  });

  it('generic client credentials: --json report with scope, audience and the response fields', async () => {
    const server = await serve(genericClientCredentials({ clientId: 'svc', clientSecret: SECRET }));
    const r = await keyfob(
      ['check', '--json', '--scope', 'read write', '--audience', 'https://api.example'],
      envFor(server.tokenUrl, 'svc'),
    );
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({
      ok: true,
      command: 'check',
      endpoint: { tokenUrl: server.tokenUrl, clientId: 'svc', scope: 'read write' },
      token: { tokenType: 'Bearer', scope: 'read write', missingScopes: [] },
    });
    expect(report.token.jwt).toBeUndefined();
    expect(report.token.lifetimeSeconds).toBeGreaterThan(3000);
    expect(report.token.lifetimeSeconds).toBeLessThanOrEqual(3600);
    expect(report.token.responseFields).toEqual(['access_token', 'scope', 'token_type', 'expires_in']);
    expect(server.tokenRequests()[0]!.params.audience).toBe('https://api.example');
    expectNoSecrets(r, issuedTokens(server));
  });

  it('decodes the claims of a JWT access token and flags scopes not granted', async () => {
    const exp = Math.floor(Date.now() / 1000) + 900;
    const claims = {
      iss: 'https://auth.example',
      aud: 'orders-api',
      exp,
      scope: 'read',
      client_id: 'svc',
      tenant: 't1',
    };
    const jwt = [
      Buffer.from('{"alg":"RS256","typ":"at+jwt"}').toString('base64url'),
      Buffer.from(JSON.stringify(claims)).toString('base64url'),
      'c2lnbmF0dXJlLW5vdC1jaGVja2Vk',
    ].join('.');
    const server = await serve(
      startServer(() => ({
        body: { access_token: jwt, token_type: 'Bearer', expires_in: 900, scope: 'read' },
      })),
    );
    const env = envFor(`${server.url}/token`, 'svc');
    const json = await keyfob(['check', '--json', '--scope', 'read write'], env);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout);
    expect(report.token.jwt).toEqual({
      claims: { iss: 'https://auth.example', aud: 'orders-api', client_id: 'svc', scope: 'read', exp },
      otherClaims: ['tenant'],
    });
    expect(report.token.missingScopes).toEqual(['write']);
    const human = await keyfob(['check', '--scope', 'read write'], env);
    expect(human.stdout).toMatch(/aud\s+"orders-api"/);
    expect(human.stdout).toMatch(/NOT granted\s+write/);
    for (const r of [json, human]) {
      expect(r.stdout).not.toContain(jwt);
      expect(r.stdout).not.toContain(jwt.split('.')[1]);
      expectNoSecrets(r, []);
    }
  });

  it('wrong secret: 401 with the credentials / encoding / client auth hints, exit 1', async () => {
    const server = await serve(genericClientCredentials({ clientId: 'svc', clientSecret: 'the-real-one' }));
    const r = await keyfob(['check'], envFor(server.tokenUrl, 'svc'));
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('FAILED: KEYFOB_TOKEN_ENDPOINT (HTTP 401 invalid_client)');
    expect(r.stdout).toContain(
      '401 Unauthorized: the token endpoint could not verify the client credentials.',
    );
    expect(r.stdout).toContain('Reset the secret or confirm the credentials with your admin');
    expect(r.stdout).toContain("base64 of 'client_id:client_secret'");
    expect(r.stdout).toContain('KEYFOB_CLIENT_AUTH');
    // In the words of the provider's troubleshooting guide (seed 001): credentials missing, incorrect or
    // improperly encoded; the wrong type of authorization header.
    expect(r.stdout).toContain('missing, incorrect');
    expect(r.stdout).toContain('improperly encoded');
    expect(r.stdout).toContain('wrong type of authorization header');
    expectNoSecrets(r, []);
  });

  it('wrong secret, --json: the error code, status and what to check', async () => {
    const server = await serve(riskCloud({ clientId: 'rc', clientSecret: 'the-real-one' }));
    const r = await keyfob(['check', '--json', '--client-auth', 'basic-only'], envFor(server.tokenUrl, 'rc'));
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({
      ok: false,
      error: { name: 'TokenEndpointError', code: 'KEYFOB_TOKEN_ENDPOINT', status: 401 },
    });
    expect(report.error.check).toHaveLength(3);
    expectNoSecrets(r, []);
  });

  it('AIRisk with a JSON body but no code: 400, check the body and its fields', async () => {
    const server = await serve(
      airisk({
        clientId: 'ai',
        clientSecret: SECRET,
        redirectUri: 'https://app.example/cb',
        codes: new Map(),
      }),
    );
    const r = await keyfob(['check', '--client-auth', 'json'], envFor(server.tokenUrl, 'ai'));
    expect(r.code).toBe(1);
    expect(server.tokenRequests()[0]!.headers['content-type']).toContain('json');
    expect(r.stdout).toContain('(HTTP 400 invalid_grant)');
    expect(r.stdout).toContain('400 Bad Request: the token request is malformed or misses a required field.');
    expect(r.stdout).toContain('The request body and its fields');
    expect(r.stdout).toContain('properly formatted JSON');
    expectNoSecrets(r, []);
  });

  it('403: permissions', async () => {
    const server = await serve(
      startServer(() => ({
        status: 403,
        body: { error: 'unauthorized_client', error_description: 'not allowed' },
      })),
    );
    const r = await keyfob(['check', '--token-url', `${server.url}/token`, '--client-id', 'svc'], {
      KEYFOB_CLIENT_SECRET: SECRET,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('(HTTP 403 unauthorized_client)');
    expect(r.stdout).toContain(
      '403 Forbidden: the credentials were accepted but this client lacks the permission',
    );
    expect(r.stdout).toContain('roles and permissions');
  });

  it('404: wrong token URL', async () => {
    const server = await serve(riskCloud({ clientId: 'rc', clientSecret: SECRET }));
    const r = await keyfob(['check', '--json'], envFor(`${server.url}/v1/account/token`, 'rc'));
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.error).toMatchObject({ status: 404, summary: '404 Not Found: the token URL is wrong.' });
    expect(report.error.check[0]).toContain('/api/v1/account/token');
    expect(report.error.check[0]).toContain('incorrect endpoint');
  });

  it('unreachable token endpoint: network code, exit 1', async () => {
    const server = await startServer(() => ({}));
    const url = `${server.url}/token`;
    await server.close();
    const r = await keyfob(['check', '--json'], envFor(url, 'svc'));
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.error.code).toBe('KEYFOB_TOKEN_ENDPOINT_NETWORK');
    expect(report.error.status).toBeUndefined();
    expect(report.error.summary).toBe('The token endpoint could not be reached.');
  });

  it('issuer: discovery, then a JWT from the real authorization server, claims reported', async () => {
    const server = await serve(startAuthorizationServer());
    const r = await keyfob(['check', '--json', '--scope', 'api:read'], {
      KEYFOB_ISSUER: server.issuer,
      KEYFOB_CLIENT_ID: 'service-basic',
      KEYFOB_CLIENT_SECRET: 'service-basic-secret',
    });
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.discovery.tokenEndpoint).toBe(server.tokenUrl);
    expect(report.endpoint.issuer).toBe(server.issuer); // as configured: no slash added
    expect(report.discovery.tokenEndpointAuthMethods).toContain('client_secret_basic');
    expect(report.token.scope).toBe('api:read');
    expect(report.token.jwt.claims).toMatchObject({ iss: server.issuer, scope: 'api:read' });
    expect(typeof report.token.jwt.claims.exp).toBe('number');
    expect(report.token.jwt.claims.aud).toBeDefined();
    expect(r.stdout).not.toContain('service-basic-secret');
    const human = await keyfob(['check'], {
      KEYFOB_ISSUER: server.issuer,
      KEYFOB_CLIENT_ID: 'service-basic',
      KEYFOB_CLIENT_SECRET: 'service-basic-secret',
    });
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`token endpoint  ${server.tokenUrl} (discovered)`);
    expect(human.stdout).toContain('client auth: from the issuer metadata');
  });

  it('client_secret_jwt from KEYFOB_CLIENT_AUTH against the real authorization server', async () => {
    const server = await serve(startAuthorizationServer());
    const secret = 'service-jwt-secret-0123456789abcdef0123456789';
    const r = await keyfob(['check', '--json'], {
      KEYFOB_ISSUER: server.issuer,
      KEYFOB_CLIENT_ID: 'service-jwt',
      KEYFOB_CLIENT_SECRET: secret,
      KEYFOB_CLIENT_AUTH: 'client_secret_jwt',
    });
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.endpoint.clientAuth).toBe('client_secret_jwt');
    expect(report.token.jwt.claims.client_id ?? report.token.jwt.claims.sub).toBeDefined();
    expect(r.stdout).not.toContain(secret);
  });

  it('issuer without metadata: discovery failure, exit 1, what to check', async () => {
    const server = await serve(genericClientCredentials({ clientId: 'svc', clientSecret: SECRET }));
    const r = await keyfob(['check', '--json', '--issuer', server.url], envFor(server.tokenUrl, 'svc'));
    expect(r.code).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.endpoint.tokenUrl).toBeUndefined();
    expect(report.error.code).toBe('KEYFOB_CONFIGURATION');
    expect(report.error.summary).toContain('Discovery failed');
    expect(server.tokenRequests()).toHaveLength(0);
  });

  it('flags override the environment (a --token-url replaces a wrong KEYFOB_TOKEN_URL)', async () => {
    const server = await serve(genericClientCredentials({ clientId: 'svc', clientSecret: SECRET }));
    const r = await keyfob(
      ['check', '--token-url', server.tokenUrl, '--client-id', 'svc'],
      envFor('https://wrong.example/token', 'someone-else'),
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`token URL       ${server.tokenUrl}`);
  });
});

describe('keyfob token', () => {
  it('prints "Bearer <token>" and nothing else', async () => {
    const server = await serve(genericClientCredentials({ clientId: 'svc', clientSecret: SECRET }));
    const r = await keyfob(['token'], envFor(server.tokenUrl, 'svc'));
    expect(r.code).toBe(0);
    const [issued] = issuedTokens(server);
    expect(r.stdout).toBe(`Bearer ${issued}\n`);
    expect(r.stderr).toBe('');
    const api = await fetch(`${server.apiUrl}/things`, { headers: { authorization: r.stdout.trim() } });
    expect(api.status).toBe(200);
  });

  it('on failure: nothing on stdout, the code and hint on stderr, exit 1', async () => {
    const server = await serve(genericClientCredentials({ clientId: 'svc', clientSecret: 'other' }));
    const r = await keyfob(['token'], envFor(server.tokenUrl, 'svc'));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('KEYFOB_TOKEN_ENDPOINT: 401 Unauthorized');
    expectNoSecrets(r, []);
  });
});

describe('usage', () => {
  it('refuses --client-secret (both spellings) with exit 2, without echoing it', async () => {
    for (const args of [
      ['check', '--client-secret', SECRET],
      ['token', `--client-secret=${SECRET}`],
    ]) {
      const r = await keyfob(args, { KEYFOB_TOKEN_URL: 'https://auth.example/t', KEYFOB_CLIENT_ID: 'svc' });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('--client-secret is refused');
      expect(r.stderr).toContain('KEYFOB_CLIENT_SECRET');
      expect(r.stdout).toBe('');
      expectNoSecrets(r, []);
    }
  });

  it('missing configuration: exit 2 naming each variable', async () => {
    const r = await keyfob(['check'], {});
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('KEYFOB_ISSUER or KEYFOB_TOKEN_URL is missing');
    expect(r.stderr).toContain('KEYFOB_CLIENT_ID is missing');
    expect(r.stderr).toContain('KEYFOB_CLIENT_SECRET is missing');
    expect(r.stdout).toBe('');
  });

  it('missing configuration with --json: exit 2, and a JSON report on stdout with the configuration error', async () => {
    const r = await keyfob(['check', '--json'], { KEYFOB_CLIENT_SECRET: SECRET });
    expect(r.code).toBe(2);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ ok: false, command: 'check', error: { code: 'KEYFOB_CONFIGURATION' } });
    expect(report.error.message).toContain('KEYFOB_CLIENT_ID is missing');
    expectNoSecrets(r, []);
  });

  it('plain http to a non-loopback host: exit 2 naming the variable (or the flag that gave it), no request', async () => {
    for (const [variable, flag] of [
      ['KEYFOB_TOKEN_URL', '--token-url'],
      ['KEYFOB_ISSUER', '--issuer'],
    ] as const) {
      const env = { KEYFOB_CLIENT_ID: 'svc', KEYFOB_CLIENT_SECRET: SECRET };
      const fromEnv = await keyfob(['check'], { ...env, [variable]: 'http://auth.example.com/t' });
      expect(fromEnv.code).toBe(2);
      expect(fromEnv.stderr).toContain(`${variable} is plain http`);
      const fromFlag = await keyfob(['check', flag, 'http://auth.example.com/t'], env);
      expect(fromFlag.code).toBe(2);
      // Named as the user gave it: the flag, not the variable.
      expect(fromFlag.stderr).toContain(`${flag} is plain http`);
      expect(fromFlag.stderr).toContain('Configuration from the flags and the environment');
      expect(fromFlag.stderr).not.toContain(variable);
      expectNoSecrets(fromFlag, []);
    }
  });

  it('no command, an unknown command or option, a stray argument: exit 2; --help: exit 0', async () => {
    expect((await keyfob([])).code).toBe(2);
    expect((await keyfob(['frobnicate'])).code).toBe(2);
    const unknown = await keyfob(['check', '--verbose']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("'--verbose'");
    const stray = await keyfob(['check', SECRET]);
    expect(stray.code).toBe(2);
    expect(stray.stderr).not.toContain(SECRET);
    const help = await keyfob(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Usage: keyfob <command>');
  });
});
