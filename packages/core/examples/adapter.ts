// "Writing an adapter" from the README, runnable: a minimal binding of global fetch to the policy.
// Run: pnpm --filter @keyfob/core exec tsx examples/adapter.ts
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { customGrant, type KeyfobRequestOptions, RequestPolicy, TokenManager } from '@keyfob/core';

// --- the adapter (this is the README example) ---
export function tokenFetch(manager: TokenManager, options: { origins: string[] }) {
  // Once per client: validates the options (a ConfigurationError now, not at the first request).
  const policy = new RequestPolicy(manager, options, { name: 'my-adapter' });
  return async function send(
    url: string,
    init: RequestInit & { keyfob?: KeyfobRequestOptions } = {},
  ): Promise<Response> {
    const attempt = policy.start(url, init.keyfob); // undefined: not an allowed origin, or skipped
    if (attempt === undefined) return fetch(url, init);
    const method = init.method ?? 'GET';
    for (;;) {
      const headers = new Headers(init.headers);
      // Rejects with the core's KeyfobError: the request is not sent without its token.
      const add = await policy.headers(attempt, method, url, init.signal ?? undefined);
      for (const name in add) headers.set(name, add[name]!); // replaces a caller-set Authorization
      // A real adapter follows redirects itself (redirect: 'manual') and asks
      // policy.redirect(attempt, method, location) before each hop.
      const response = await fetch(url, { ...init, headers, redirect: 'error' });
      if (!policy.rejected(attempt, response.status, response.headers)) return response;
      if (!(await policy.retry(attempt, init.body))) return response; // the second 401 goes to the caller
      await response.body?.cancel();
    }
  };
}

// --- a token endpoint and an API that rejects the first token, to watch it work ---
let n = 0;
const tokens = new TokenManager({
  grant: customGrant(async () => ({ access_token: `demo-token-${++n}`, expires_in: 3600 })),
});
const server = createServer((req, res) => {
  const ok = req.headers.authorization === 'Bearer demo-token-2';
  res.writeHead(ok ? 200 : 401).end(ok ? 'hello' : '');
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const api = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const send = tokenFetch(tokens, { origins: [api] });
const response = await send(`${api}/hello`);
console.log(response.status, await response.text()); // 200 hello (after one 401 and a new token)
server.close();
await tokens.close();
