import { inspect } from 'node:util';
import { createTestPki, DEFAULT_CLIENTS, startAuthorizationServer } from '@keyfob/authorization-server';
import { clientCredentials, TokenEndpointError, TokenManager } from '@keyfob/core';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';

const running: { close(): Promise<unknown> }[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.close()));
});

const pki = createTestPki();

async function mtlsServer() {
  const server = await startAuthorizationServer({
    mtls: { key: pki.server.key, cert: pki.server.cert, ca: pki.ca.cert },
    clients: [
      ...DEFAULT_CLIENTS,
      {
        clientId: 'service-mtls',
        tokenEndpointAuthMethod: 'tls_client_auth',
        tlsClientAuthSanDns: 'service-mtls.test',
        certificateBound: true,
        grantTypes: ['client_credentials'],
        scope: 'api:read',
      },
    ],
  });
  running.push(server);
  return server;
}

/** A fetch that presents `cert` (and trusts the test CA), the way a user hands keyfob a client certificate. */
function fetchWithCertificate(cert?: { key: string; cert: string }) {
  const agent = new Agent({ connect: { ca: pki.ca.cert, ...cert } });
  running.push(agent);
  const withAgent = (input: string | URL | Request, init?: RequestInit) =>
    undiciFetch(input as string, { ...(init as object), dispatcher: agent });
  return withAgent as unknown as typeof fetch;
}

describe('mutual TLS (RFC 8705)', () => {
  it("tls_client_auth through discovery's mtls_endpoint_aliases; the certificate-bound token works with the same agent only", async () => {
    const server = await mtlsServer();
    const clientCert = pki.client('service-mtls.test');
    const mtlsFetch = fetchWithCertificate(clientCert);
    const tokens = new TokenManager({
      issuer: server.issuer,
      grant: clientCredentials({ clientId: 'service-mtls', clientAuth: 'tls_client_auth' }),
      fetch: mtlsFetch,
    });
    running.push(tokens);
    const token = await tokens.getToken();
    const metadata = await tokens.discover();
    expect(metadata?.mtlsEndpointAliases?.tokenEndpoint).toBe(server.mtls!.tokenUrl);
    expect(server.stats.tokenRequestsByGrant.client_credentials).toBe(1);
    const claims = JSON.parse(Buffer.from(token.accessToken.split('.')[1]!, 'base64url').toString('utf8'));
    expect(claims.cnf['x5t#S256']).toMatch(/^[\w-]{43}$/);

    const header = { authorization: await tokens.getAuthorizationHeader() };
    const withCert = await mtlsFetch(`${server.mtls!.apiUrl}/hello`, { headers: header });
    expect(withCert.status).toBe(200);
    const otherCert = await fetchWithCertificate(pki.client('service-mtls.test'))(
      `${server.mtls!.apiUrl}/hello`,
      {
        headers: header,
      },
    );
    expect(otherCert.status).toBe(401);
    const plain = await fetch(`${server.apiUrl}/hello`, { headers: header });
    expect(plain.status).toBe(401);
  });

  it('dispatcher: an undici Agent presenting the certificate, with the global fetch, for the token endpoint and the API', async () => {
    const server = await mtlsServer();
    const agent = new Agent({ connect: { ca: pki.ca.cert, ...pki.client('service-mtls.test') } });
    running.push(agent);
    const tokens = new TokenManager({
      issuer: server.issuer,
      grant: clientCredentials({ clientId: 'service-mtls', clientAuth: 'tls_client_auth' }),
      dispatcher: agent,
    });
    running.push(tokens);
    const header = { authorization: await tokens.getAuthorizationHeader() };
    expect(server.stats.tokenRequestsByGrant.client_credentials).toBe(1);
    const api = await fetch(`${server.mtls!.apiUrl}/hello`, {
      headers: header,
      dispatcher: agent,
    } as RequestInit);
    expect(api.status).toBe(200);
    expect(
      () =>
        new TokenManager({
          issuer: server.issuer,
          grant: clientCredentials({ clientId: 'x', clientAuth: 'tls_client_auth' }),
          dispatcher: {},
        }),
    ).toThrow(/dispatcher must be an undici Dispatcher/);
  });

  it('a wrong client certificate is a TokenEndpointError with an mTLS hint, and no key anywhere', async () => {
    const server = await mtlsServer();
    const cases = [pki.untrustedClient('service-mtls.test'), pki.client('someone-else.test'), undefined];
    for (const cert of cases) {
      const tokens = new TokenManager({
        tokenUrl: server.mtls!.tokenUrl,
        grant: clientCredentials({ clientId: 'service-mtls', clientAuth: 'tls_client_auth' }),
        fetch: fetchWithCertificate(cert),
      });
      running.push(tokens);
      const error = await tokens.getToken().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TokenEndpointError);
      const err = error as TokenEndpointError;
      expect(err).toMatchObject({ status: 401, error: 'invalid_client' });
      expect(err.hint).toMatch(/client certificate/);
      const keyLine = cert?.key.split('\n')[1];
      for (const text of [err.message, JSON.stringify(err), inspect(err, { depth: 5 })]) {
        if (keyLine) expect(text).not.toContain(keyLine);
      }
    }
  });
});
