// A self-contained tour of @keyfob/core against a token endpoint and an API on 127.0.0.1.
// Run: pnpm --filter @keyfob/core example
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { clientCredentials, TokenManager } from '../src/index.js';

let issued = 0;
const valid = new Set<string>();
const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url === '/oauth2/token') {
    const token = `demo-token-${++issued}`;
    valid.add(token);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ access_token: token, token_type: 'bearer', expires_in: 3 }));
    return;
  }
  const auth = req.headers.authorization?.replace(/^Bearer /, '') ?? '';
  res.writeHead(valid.has(auth) ? 200 : 401, { 'content-type': 'application/json' });
  res.end(JSON.stringify(valid.has(auth) ? { ok: true } : { error: 'invalid_token' }));
});
await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const tokens = new TokenManager({
  tokenUrl: `${base}/oauth2/token`,
  grant: clientCredentials({ clientId: 'demo', clientSecret: 'demo-secret', scope: 'read' }),
  logger: console,
});
tokens.on('tokenRefreshed', (e) => console.log(`refreshed ahead of expiry -> token ${e.fingerprint}`));

const burst = await Promise.all(Array.from({ length: 1000 }, () => tokens.getToken()));
console.log(
  `1000 concurrent getToken() -> ${new Set(burst.map((t) => t.accessToken)).size} token, ${issued} token request`,
);

let ok = 0;
let failed = 0;
const until = Date.now() + 7_000;
while (Date.now() < until) {
  const res = await fetch(`${base}/api`, {
    headers: { authorization: await tokens.getAuthorizationHeader() },
  });
  if (res.ok) ok++;
  else failed++;
  await new Promise((r) => setTimeout(r, 20));
}
console.log(
  `7 s of calls with 3 s tokens: ${ok} calls succeeded, ${failed} failed, ${issued} token requests`,
);
await tokens.close();
server.close();
