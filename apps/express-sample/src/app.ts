import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type AccessToken,
  authorizationCode,
  ConfigurationError,
  clientCredentials,
  type KeyfobLogger,
  redact,
  TokenManager,
} from '@keyfob/core';
import { authorizationCodeRouter, getKeyfob, keyfobErrorHandler, tokenMiddleware } from '@keyfob/express';
import express, { type Request } from 'express';
import { SessionCookie } from './session.js';

/** Environment of the sample (see README). `process.env` fits. */
export type SampleEnv = Record<string, string | undefined>;

export interface RunningExpressSample {
  /** `http://127.0.0.1:PORT` (or PUBLIC_URL). */
  url: string;
  close(): Promise<void>;
}

function required(env: SampleEnv, names: string[]): void {
  const missing = names.filter((n) => !env[n]);
  if (missing.length) {
    throw new ConfigurationError(
      `express-sample: set ${missing.join(', ')} (see apps/express-sample/README.md).`,
    );
  }
}

function clientAuth<T extends string>(value: string | undefined, allowed: readonly T[], fallback: T): T {
  if (value === undefined || value === '') return fallback;
  if (!(allowed as readonly string[]).includes(value)) {
    throw new ConfigurationError(
      `express-sample: client auth "${value}" is not one of ${allowed.join(', ')}.`,
    );
  }
  return value as T;
}

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function page(title: string, body: string): string {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`;
}

/**
 * Starts the sample: a login (authorization code + PKCE), `/profile` calling `${API_URL}/me` with the user's
 * token, and `/api/hello` calling `${API_URL}/hello` with the service's own (client credentials) token.
 */
export async function startExpressSample(env: SampleEnv): Promise<RunningExpressSample> {
  required(env, ['AUTHORIZE_URL', 'TOKEN_URL', 'CLIENT_ID', 'API_URL']);
  const apiUrl = env.API_URL!.replace(/\/+$/, '');
  const host = env.HOST || '127.0.0.1';
  const port = env.PORT === undefined || env.PORT === '' ? 3000 : Number(env.PORT);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new ConfigurationError('express-sample: bad PORT.');
  const cookieSecret = env.COOKIE_SECRET || randomBytes(32).toString('base64url');
  if (cookieSecret.length < 32)
    throw new ConfigurationError('express-sample: COOKIE_SECRET must be 32+ characters.');
  const logger: KeyfobLogger | undefined = env.KEYFOB_LOG ? console : undefined;

  // Listen first: with PORT=0 the redirect URI needs the port the OS picked.
  let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server = createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const actualPort = (server.address() as AddressInfo).port;
  const url = (env.PUBLIC_URL || `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`).replace(
    /\/+$/,
    '',
  );

  const managers: TokenManager[] = [];
  const close = async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await Promise.all(managers.map((m) => m.close()));
  };

  try {
    // --- per-user tokens: authorization code --------------------------------------------------------------
    const grant = authorizationCode({
      clientId: env.CLIENT_ID!,
      ...(env.CLIENT_SECRET ? { clientSecret: env.CLIENT_SECRET } : {}),
      redirectUri: `${url}/callback`,
      authorizeUrl: env.AUTHORIZE_URL!,
      ...(env.REVOCATION_URL ? { revocationUrl: env.REVOCATION_URL } : {}),
      scope: env.SCOPE ?? 'openid offline_access api:read',
      clientAuth: clientAuth(env.CLIENT_AUTH, ['body', 'basic', 'json'] as const, 'body'),
      ...(env.PKCE === 'false' ? { pkce: false } : {}),
    });
    const users = new TokenManager({ tokenUrl: env.TOKEN_URL!, grant, ...(logger ? { logger } : {}) });
    managers.push(users);

    const session = new SessionCookie(cookieSecret, url.startsWith('https:'));
    const userIdParam = env.USER_ID_PARAM || undefined;
    /** Identified mode (USER_ID_PARAM): `/login?user=<id>` stands in for your app's own sign-in. */
    const appUser = new WeakMap<Request, string>();
    const subject = (req: Request) => appUser.get(req) ?? session.read(req)?.sub;

    const auth = authorizationCodeRouter({
      manager: users,
      grant,
      subject,
      cookieSecret,
      ...(userIdParam ? { userIdParam } : {}),
      // The demo authorization server is non-interactive: `?user=` becomes the login_hint (who logs in).
      authorizationParams: (req) =>
        !userIdParam && typeof req.query.user === 'string' && req.query.user
          ? { login_hint: req.query.user }
          : undefined,
      onLogin: ({ res, subject: sub }) => session.write(res, sub),
      onLogout: ({ res }) => session.clear(res),
      ...(logger ? { logger } : {}),
    });

    const app = express();
    app.disable('x-powered-by');
    if (userIdParam) {
      app.get('/login', (req, res, next) => {
        const user = typeof req.query.user === 'string' ? req.query.user.trim() : '';
        if (user && /^[A-Za-z0-9_.@-]{1,64}$/.test(user)) {
          // Stand-in for your app's own sign-in: the session knows the user before the provider login starts.
          appUser.set(req, user);
          session.write(res, user);
        }
        next();
      });
    }
    app.use(auth);

    app.get('/', (req, res) => {
      const sub = subject(req);
      res
        .type('html')
        .send(
          page(
            'keyfob express sample',
            sub
              ? `<p>Signed in (subject <code>${escapeHtml(sub)}</code>).</p><p><a href="/profile">Profile</a> · <a href="/api/hello">/api/hello</a></p>` +
                  '<form method="post" action="/logout"><button type="submit">Log out</button></form>'
              : '<form action="/login"><label>User <input name="user" value="alice"></label> <button type="submit">Log in</button></form>' +
                  '<p><a href="/api/hello">/api/hello</a> (service token, no login)</p>',
          ),
        );
    });

    /** Calls the API with the request's token; on 401 drops exactly that token and retries once. */
    async function callApi(req: Request, path: string): Promise<{ status: number; body: unknown }> {
      const send = (token: AccessToken) =>
        fetch(`${apiUrl}${path}`, {
          headers: { authorization: `Bearer ${token.accessToken}`, accept: 'application/json' },
        });
      let token = await getKeyfob(req).getToken();
      let response = await send(token);
      if (response.status === 401) {
        await response.body?.cancel();
        await getKeyfob(req).invalidate(token);
        token = await getKeyfob(req).getToken();
        response = await send(token);
      }
      const text = await response.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {
        // not JSON: pass the text on
      }
      return { status: response.status, body };
    }

    app.get('/profile', auth.requireUserToken(), async (req, res) => {
      const { status, body } = await callApi(req, '/me');
      if (status !== 200) {
        res.status(502).json({ error: 'upstream_error', upstreamStatus: status });
        return;
      }
      const sub = String((body as { sub?: unknown }).sub ?? '');
      res.format({
        json: () => res.json({ subject: getKeyfob(req).subject, me: body }),
        html: () =>
          res.send(
            page('Profile', `<h1>Profile</h1><p>API says you are <b id="sub">${escapeHtml(sub)}</b>.</p>`),
          ),
        default: () => res.json({ subject: getKeyfob(req).subject, me: body }),
      });
    });

    if (env.SERVICE_CLIENT_ID) {
      const service = new TokenManager({
        tokenUrl: env.SERVICE_TOKEN_URL || env.TOKEN_URL!,
        grant: clientCredentials({
          clientId: env.SERVICE_CLIENT_ID,
          clientSecret: env.SERVICE_CLIENT_SECRET ?? '',
          ...(env.SERVICE_SCOPE ? { scope: env.SERVICE_SCOPE } : {}),
          clientAuth: clientAuth(
            env.SERVICE_CLIENT_AUTH,
            ['basic', 'body', 'json', 'basic-only'] as const,
            'basic',
          ),
        }),
        ...(logger ? { logger } : {}),
      });
      managers.push(service);
      app.get('/api/hello', tokenMiddleware(service), async (req, res) => {
        const { status, body } = await callApi(req, '/hello');
        res.status(status === 200 ? 200 : 502).json({ upstreamStatus: status, hello: body });
      });
    }

    app.use(keyfobErrorHandler({ loginUrl: '/login', ...(logger ? { logger } : {}) }));
    // Anything else (e.g. the API unreachable): a plain 500, no stack.
    app.use((err: unknown, _req: Request, res: express.Response, next: express.NextFunction) => {
      if (res.headersSent) return next(err);
      logger?.error(`express-sample: ${redact(err instanceof Error ? err.message : String(err))}`);
      res.status(500).json({ error: 'server_error' });
    });
    handler = app;
  } catch (e) {
    await close();
    throw e;
  }
  return { url, close };
}
