import { DEFAULT_CLIENTS, startAuthorizationServer } from './index.js';

function numberFromEnv(name: string): number | undefined {
  const value = process.env[name];
  if (value === undefined || value === '') return undefined;
  const parsed = Number(value);
  if (!Number.isFinite(parsed)) throw new TypeError(`${name} must be a number, got ${value}`);
  return parsed;
}

const server = await startAuthorizationServer({
  port: numberFromEnv('PORT') ?? 0,
  accessTokenTtlSeconds: numberFromEnv('ACCESS_TOKEN_TTL'),
  refreshTokenTtlSeconds: numberFromEnv('REFRESH_TOKEN_TTL'),
  tokenLatencyMs: numberFromEnv('TOKEN_LATENCY_MS'),
});

console.log(
  JSON.stringify({
    issuer: server.issuer,
    tokenUrl: server.tokenUrl,
    authorizeUrl: server.authorizeUrl,
    revocationUrl: server.revocationUrl,
    jwksUrl: server.jwksUrl,
    apiUrl: server.apiUrl,
    clients: DEFAULT_CLIENTS,
  }),
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    server.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
