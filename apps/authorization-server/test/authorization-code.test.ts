import { describe, expect, it } from 'vitest';
import { browserlessLogin } from '../src/index.js';
import { callApi, decodeJwt, login, pkcePair, postForm, startServer, userTokens } from './helpers.js';

const webApp = { client_id: 'web-app', client_secret: 'web-app-secret' };

describe('authorization_code + PKCE', () => {
  it('logs in without a browser, exchanges the code, and /api/me returns the login_hint user', async () => {
    const server = await startServer();
    const { redirect, verifier, state, redirectUri } = await login(server, { loginHint: 'alice' });
    expect(`${redirect.origin}${redirect.pathname}`).toBe(redirectUri);
    expect(redirect.searchParams.get('state')).toBe(state);
    expect(redirect.searchParams.get('iss')).toBe(server.issuer);
    const code = redirect.searchParams.get('code');
    expect(code).toBeTruthy();

    const exchanged = await postForm(server.tokenUrl, {
      grant_type: 'authorization_code',
      code: code!,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      ...webApp,
    });
    expect(exchanged.status).toBe(200);
    expect(exchanged.body).toMatchObject({ token_type: 'Bearer', expires_in: 60, scope: 'api:read' });
    expect(exchanged.body.refresh_token).toEqual(expect.any(String));
    expect(exchanged.body.id_token).toEqual(expect.any(String));
    expect(decodeJwt(exchanged.body.access_token)).toMatchObject({
      sub: 'alice',
      client_id: 'web-app',
      aud: server.apiUrl,
      iss: server.issuer,
    });

    const me = await callApi(server, '/me', exchanged.body.access_token);
    expect(me.status).toBe(200);
    expect(me.body).toEqual({ ok: true, sub: 'alice' });
    const hello = await callApi(server, '/hello', exchanged.body.access_token);
    expect(hello.body).toMatchObject({ ok: true, sub: 'alice', client_id: 'web-app' });

    // the code is single use
    const again = await postForm(server.tokenUrl, {
      grant_type: 'authorization_code',
      code: code!,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      ...webApp,
    });
    expect(again.status).toBe(400);
    expect(again.body.error).toBe('invalid_grant');
  });

  it('falls back to the userid parameter, then to demo-user', async () => {
    const server = await startServer();
    const byUserid = await login(server, { extra: { userid: 'bob' } });
    const fallback = await login(server);
    for (const [result, expected] of [
      [byUserid, 'bob'],
      [fallback, 'demo-user'],
    ] as const) {
      const exchanged = await postForm(server.tokenUrl, {
        grant_type: 'authorization_code',
        code: result.redirect.searchParams.get('code')!,
        redirect_uri: result.redirectUri,
        code_verifier: result.verifier,
        ...webApp,
      });
      expect(decodeJwt(exchanged.body.access_token).sub).toBe(expected);
    }
  });

  it('rotates refresh tokens: the old one fails the second time', async () => {
    const server = await startServer();
    const first = await userTokens(server, 'carol');

    const refreshed = await postForm(server.tokenUrl, {
      grant_type: 'refresh_token',
      refresh_token: first.refresh_token,
      ...webApp,
    });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.refresh_token).toEqual(expect.any(String));
    expect(refreshed.body.refresh_token).not.toBe(first.refresh_token);
    expect(refreshed.body.access_token).not.toBe(first.access_token);
    expect((await callApi(server, '/me', refreshed.body.access_token)).body).toEqual({
      ok: true,
      sub: 'carol',
    });

    const replay = await postForm(server.tokenUrl, {
      grant_type: 'refresh_token',
      refresh_token: first.refresh_token,
      ...webApp,
    });
    expect(replay.status).toBe(400);
    expect(replay.body.error).toBe('invalid_grant');

    // replaying a rotated refresh token revokes the whole grant: its tokens die at the API too
    const afterReplay = await callApi(server, '/me', refreshed.body.access_token);
    expect(afterReplay.status).toBe(401);
    expect(afterReplay.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(server.stats.tokenRequestsByGrant).toEqual({ authorization_code: 1, refresh_token: 2 });
  });

  it('ends with error=access_denied at the redirect URI for ?deny=1 and login_hint=deny', async () => {
    const server = await startServer();
    for (const params of [{ extra: { deny: '1' } }, { loginHint: 'deny' }]) {
      const { redirect, state, redirectUri } = await login(server, params);
      expect(`${redirect.origin}${redirect.pathname}`).toBe(redirectUri);
      expect(redirect.searchParams.get('error')).toBe('access_denied');
      expect(redirect.searchParams.get('state')).toBe(state);
      expect(redirect.searchParams.get('code')).toBeNull();
    }
  });

  it('accepts any loopback redirect URI for web-app (127.0.0.1 and localhost, any port and path), nothing else', async () => {
    const server = await startServer();
    for (const redirectUri of ['http://localhost:3999/auth/callback', 'http://127.0.0.1:8080/x?y=1']) {
      const { redirect } = await login(server, { redirectUri });
      expect(redirect.searchParams.get('code')).toBeTruthy();
      expect(`${redirect.origin}${redirect.pathname}`).toBe(
        new URL(redirectUri).origin + new URL(redirectUri).pathname,
      );
    }
    await expect(login(server, { redirectUri: 'http://evil.example:3000/callback' })).rejects.toThrow(
      /400.*redirect_uri/,
    );
    await expect(login(server, { redirectUri: 'https://127.0.0.1:3000/callback' })).rejects.toThrow(/400/);
  });

  it('checks the PKCE code_verifier', async () => {
    const server = await startServer();
    const { redirect, redirectUri } = await login(server, { loginHint: 'dave' });
    const wrong = await postForm(server.tokenUrl, {
      grant_type: 'authorization_code',
      code: redirect.searchParams.get('code')!,
      redirect_uri: redirectUri,
      code_verifier: pkcePair().verifier,
      ...webApp,
    });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toBe('invalid_grant');
  });

  it('requires PKCE from public clients and lets them exchange with client_id only', async () => {
    const server = await startServer();
    const redirectUri = 'http://127.0.0.1:40001/cb';
    const url = new URL(server.authorizeUrl);
    url.search = new URLSearchParams({
      client_id: 'public-app',
      response_type: 'code',
      redirect_uri: redirectUri,
      scope: 'openid api:read',
      state: 's1',
    }).toString();
    const withoutPkce = await browserlessLogin(url.href);
    expect(withoutPkce.searchParams.get('error')).toBe('invalid_request');

    const { redirect, verifier } = await login(server, {
      clientId: 'public-app',
      redirectUri,
      loginHint: 'erin',
    });
    const exchanged = await postForm(server.tokenUrl, {
      grant_type: 'authorization_code',
      code: redirect.searchParams.get('code')!,
      redirect_uri: redirectUri,
      code_verifier: verifier,
      client_id: 'public-app',
    });
    expect(exchanged.status).toBe(200);
    expect(exchanged.body.refresh_token).toEqual(expect.any(String));
    expect((await callApi(server, '/me', exchanged.body.access_token)).body).toEqual({
      ok: true,
      sub: 'erin',
    });
  });

  it('uses custom clients with exact redirect URIs', async () => {
    const server = await startServer({
      clients: [
        {
          clientId: 'exact',
          clientSecret: 'exact-secret',
          tokenEndpointAuthMethod: 'client_secret_basic',
          grantTypes: ['authorization_code', 'refresh_token'],
          redirectUris: ['http://127.0.0.1:50000/only'],
          scope: 'openid api:read',
        },
      ],
    });
    const ok = await login(server, { clientId: 'exact', redirectUri: 'http://127.0.0.1:50000/only' });
    expect(ok.redirect.searchParams.get('code')).toBeTruthy();
    await expect(
      login(server, { clientId: 'exact', redirectUri: 'http://127.0.0.1:50001/only' }),
    ).rejects.toThrow(/400/);
  });
});
