import { createHash, randomBytes } from 'node:crypto';
import { afterEach } from 'vitest';
import {
  type AuthorizationServerOptions,
  browserlessLogin,
  type RunningAuthorizationServer,
  startAuthorizationServer,
} from '../src/index.js';

const running: RunningAuthorizationServer[] = [];

/** Starts a server that is closed after the current test. */
export async function startServer(options?: AuthorizationServerOptions): Promise<RunningAuthorizationServer> {
  const server = await startAuthorizationServer(options);
  running.push(server);
  return server;
}

afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});

export interface TokenResult {
  status: number;
  body: Record<string, any>;
  headers: Headers;
}

export async function postForm(
  url: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<TokenResult> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json', ...headers },
    body: new URLSearchParams(form),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : {}, headers: response.headers };
}

export function basic(clientId: string, secret: string): Record<string, string> {
  const encode = (value: string) => encodeURIComponent(value);
  return {
    authorization: `Basic ${Buffer.from(`${encode(clientId)}:${encode(secret)}`).toString('base64')}`,
  };
}

export async function clientCredentials(
  server: RunningAuthorizationServer,
  client: 'service-basic' | 'service-post' = 'service-basic',
  extra: Record<string, string> = {},
): Promise<string> {
  const result =
    client === 'service-basic'
      ? await postForm(
          server.tokenUrl,
          { grant_type: 'client_credentials', ...extra },
          basic('service-basic', 'service-basic-secret'),
        )
      : await postForm(server.tokenUrl, {
          grant_type: 'client_credentials',
          client_id: 'service-post',
          client_secret: 'service-post-secret',
          ...extra,
        });
  if (result.status !== 200) throw new Error(`token request failed: ${JSON.stringify(result.body)}`);
  return result.body.access_token as string;
}

export async function callApi(
  server: RunningAuthorizationServer,
  path: string,
  token?: string,
  init: RequestInit = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  const response = await fetch(`${server.apiUrl}${path}`, { ...init, headers, redirect: 'manual' });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

export function pkcePair(): { verifier: string; challenge: string } {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function decodeJwt(token: string): Record<string, any> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'));
}

export interface LoginParams {
  clientId?: string;
  redirectUri?: string;
  scope?: string;
  loginHint?: string;
  extra?: Record<string, string>;
}

/** Runs the authorization request for web-app (by default) and returns where the server redirected to. */
export async function login(
  server: RunningAuthorizationServer,
  params: LoginParams = {},
): Promise<{ redirect: URL; verifier: string; state: string; redirectUri: string }> {
  const { verifier, challenge } = pkcePair();
  const state = randomBytes(8).toString('hex');
  const redirectUri = params.redirectUri ?? 'http://127.0.0.1:43210/callback';
  const url = new URL(server.authorizeUrl);
  url.search = new URLSearchParams({
    client_id: params.clientId ?? 'web-app',
    response_type: 'code',
    redirect_uri: redirectUri,
    scope: params.scope ?? 'openid offline_access api:read',
    state,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    ...(params.loginHint ? { login_hint: params.loginHint } : {}),
    ...params.extra,
  }).toString();
  const redirect = await browserlessLogin(url.href);
  return { redirect, verifier, state, redirectUri };
}

/** Full web-app login: authorization request, then the code exchange (client_secret_post + code_verifier). */
export async function userTokens(
  server: RunningAuthorizationServer,
  loginHint = 'alice',
): Promise<{ access_token: string; refresh_token: string; [key: string]: any }> {
  const { redirect, verifier, redirectUri } = await login(server, { loginHint });
  const code = redirect.searchParams.get('code');
  if (!code) throw new Error(`no code in ${redirect.href}`);
  const result = await postForm(server.tokenUrl, {
    grant_type: 'authorization_code',
    code,
    redirect_uri: redirectUri,
    code_verifier: verifier,
    client_id: 'web-app',
    client_secret: 'web-app-secret',
  });
  if (result.status !== 200) throw new Error(`code exchange failed: ${JSON.stringify(result.body)}`);
  return result.body as { access_token: string; refresh_token: string };
}
