// A user's install, checked: run from a folder where the packed @keyfob/core, @keyfob/axios and
// @keyfob/nestjs tarballs were installed with npm next to a given NestJS major (see consumer-smoke.sh).
// Plain JavaScript, no build step and no decorators syntax: it is what `node app.mjs` sees.
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import 'reflect-metadata';
import { clientCredentials, TokenManager } from '@keyfob/core';
import { getKeyfobHttpToken, getTokenManagerToken, KeyfobModule } from '@keyfob/nestjs';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { firstValueFrom } from 'rxjs';

const require = createRequire(import.meta.url);
const nestVersion = require('@nestjs/core/package.json').version;

// CommonJS consumers get the same API.
for (const name of ['@keyfob/core', '@keyfob/axios', '@keyfob/nestjs']) {
  const cjs = require(name);
  assert.ok(Object.keys(cjs).length > 0, `${name} has no CommonJS exports`);
}
assert.equal(typeof require('@keyfob/nestjs').KeyfobModule.forRoot, 'function');

const listen = (server) =>
  new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`)),
  );

let issued = 0;
const revoked = new Set();
const tokenServer = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    issued++;
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ access_token: `tok-${issued}`, token_type: 'Bearer', expires_in: 3600 }));
  });
});
const seen = [];
const apiServer = createServer((req, res) => {
  const auth = req.headers.authorization;
  seen.push(auth);
  if (!auth?.startsWith('Bearer tok-') || revoked.has(auth.slice(7))) {
    res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' });
    res.end();
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ ok: true, path: req.url }));
});
const tokenUrl = `${await listen(tokenServer)}/token`;
const apiUrl = await listen(apiServer);

class AppModule {}
Module({
  imports: [
    KeyfobModule.forRoot({
      tokenUrl,
      grant: clientCredentials({ clientId: 'smoke', clientSecret: 'smoke-secret' }),
      http: { baseURL: apiUrl },
    }),
  ],
})(AppModule);

const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
try {
  const http = app.get(getKeyfobHttpToken());
  const manager = app.get(getTokenManagerToken());
  assert.ok(manager instanceof TokenManager, 'the injected manager is a TokenManager');

  for (const path of ['/a', '/b', '/c']) {
    const res = await firstValueFrom(http.get(path));
    assert.equal(res.status, 200);
    assert.deepEqual(res.data, { ok: true, path });
  }
  assert.deepEqual(seen, ['Bearer tok-1', 'Bearer tok-1', 'Bearer tok-1']);
  assert.equal(issued, 1, 'one token request for three calls');

  // The API stops accepting the token: one 401, one new token, the call succeeds.
  revoked.add('tok-1');
  const res = await firstValueFrom(http.get('/after-revocation'));
  assert.equal(res.status, 200);
  assert.equal(issued, 2);
  assert.deepEqual(seen.slice(3), ['Bearer tok-1', 'Bearer tok-2']);

  // Another origin gets no token.
  const other = createServer((req, res2) => {
    seen.push(`other:${req.headers.authorization ?? 'none'}`);
    res2.end('{}');
  });
  const otherUrl = await listen(other);
  await firstValueFrom(http.get(`${otherUrl}/x`));
  other.close();
  assert.equal(seen.at(-1), 'other:none');
} finally {
  await app.close();
  tokenServer.close();
  apiServer.close();
}
console.log(`consumer smoke test: NestJS ${nestVersion}, packed @keyfob/core, axios and nestjs: ok`);
