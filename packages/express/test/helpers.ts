import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RunningApp {
  origin: string;
  close(): Promise<void>;
}

type Listener = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * Listens on 127.0.0.1:0 first, then builds the app with its origin (the redirect URI needs the port).
 */
export async function startApp(build: (origin: string) => Listener | Promise<Listener>): Promise<RunningApp> {
  let handler: Listener = (_req, res) => {
    res.statusCode = 503;
    res.end();
  };
  const server: Server = createServer((req, res) => handler(req, res));
  server.keepAliveTimeout = 1_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  handler = await build(origin);
  return {
    origin,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface SetCookie {
  name: string;
  value: string;
  attributes: Record<string, string | true>;
}

export function parseSetCookie(line: string): SetCookie {
  const [pair = '', ...rest] = line.split(';');
  const eq = pair.indexOf('=');
  const attributes: Record<string, string | true> = {};
  for (const a of rest) {
    const i = a.indexOf('=');
    if (i < 0) attributes[a.trim().toLowerCase()] = true;
    else attributes[a.slice(0, i).trim().toLowerCase()] = a.slice(i + 1).trim();
  }
  return { name: pair.slice(0, eq).trim(), value: pair.slice(eq + 1).trim(), attributes };
}

export interface Answer {
  status: number;
  headers: Headers;
  location: string | undefined;
  text: string;
  json: any;
  setCookies: SetCookie[];
}

/**
 * A browser for one app origin: a cookie jar (path-aware, honours deletion), manual redirects.
 * The authorization server's side is driven by `browserlessLogin`.
 */
export class Browser {
  readonly jar = new Map<string, { value: string; path: string }>();

  constructor(readonly origin: string) {}

  cookieHeader(url: URL): string | undefined {
    const pairs: string[] = [];
    for (const [name, { value, path }] of this.jar) {
      if (path === '/' || url.pathname === path || url.pathname.startsWith(`${path}/`))
        pairs.push(`${name}=${value}`);
    }
    return pairs.length ? pairs.join('; ') : undefined;
  }

  setCookie(name: string, value: string, path = '/'): void {
    this.jar.set(name, { value, path });
  }

  async request(
    pathOrUrl: string,
    init: { method?: string; accept?: string; headers?: Record<string, string> } = {},
  ): Promise<Answer> {
    const url = new URL(pathOrUrl, this.origin);
    const headers: Record<string, string> = { accept: init.accept ?? 'application/json', ...init.headers };
    const cookie = this.cookieHeader(url);
    if (cookie) headers.cookie = cookie;
    const response = await fetch(url, { method: init.method ?? 'GET', headers, redirect: 'manual' });
    const setCookies = response.headers.getSetCookie().map(parseSetCookie);
    for (const c of setCookies) {
      const path = typeof c.attributes.path === 'string' ? c.attributes.path : '/';
      const expires =
        typeof c.attributes.expires === 'string' ? Date.parse(c.attributes.expires) : Number.NaN;
      if (c.attributes['max-age'] === '0' || (!Number.isNaN(expires) && expires <= Date.now()))
        this.jar.delete(c.name);
      else this.jar.set(c.name, { value: c.value, path });
    }
    const text = await response.text();
    let json: any;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return {
      status: response.status,
      headers: response.headers,
      location: response.headers.get('location') ?? undefined,
      text,
      json,
      setCookies,
    };
  }

  get(path: string, accept?: string): Promise<Answer> {
    return this.request(path, accept ? { accept } : {});
  }

  post(path: string, accept?: string): Promise<Answer> {
    return this.request(path, { method: 'POST', ...(accept ? { accept } : {}) });
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
