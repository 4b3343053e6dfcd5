import { Issuer, startProtectedApi, startServer, type TestServer } from '../../packages/testing/src/index.ts';

/**
 * The hosts README examples use, served on 127.0.0.1: `https://auth.example.com` is a permissive
 * authorization server (discovery, and a token for any client that authenticates somehow, at any
 * POST path) and `https://api.example.com` an API accepting only the tokens it issued.
 */
export interface ExampleServers {
  auth: TestServer;
  api: TestServer;
  issuer: Issuer;
  /** Replaces the example hosts in `code` by the local servers. */
  rewrite(code: string): string;
  /** Environment the runnable examples read. */
  env: Record<string, string>;
  close(): Promise<void>;
}

export const EXAMPLE_CLIENT = { id: 'readme-client', secret: 'readme-secret-0123456789abcdef0123456789' };

export async function startExampleServers(): Promise<ExampleServers> {
  const issuer = new Issuer();
  let origin = '';
  const auth = await startServer((req) => {
    const path = req.path.split('?')[0]!;
    if (req.method === 'GET' && path.startsWith('/.well-known/')) {
      return {
        body: {
          issuer: origin,
          token_endpoint: `${origin}/oauth2/token`,
          authorization_endpoint: `${origin}/authorize`,
          token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
        },
      };
    }
    if (req.method !== 'POST') return { status: 404, body: { error: 'not_found' } };
    // A JWT bearer grant (RFC 7523 2.1) may come without client authentication: the assertion stands for it.
    const authenticated =
      /^Basic /i.test(req.headers.authorization ?? '') ||
      req.params.client_id ||
      (req.params.grant_type === 'urn:ietf:params:oauth:grant-type:jwt-bearer' && req.params.assertion) ||
      // The platform with user login (seeds/003): username and password only, no client.
      (req.params.grant_type === 'password' && req.params.username && req.params.password);
    if (!authenticated) return { status: 401, body: { error: 'invalid_client' } };
    const subject = req.params.username ?? req.params.userid;
    const i = issuer.issue(3600, subject, req.params.scope);
    return {
      body: {
        access_token: i.token,
        token_type: 'Bearer',
        expires_in: 3600,
        ...(req.params.scope ? { scope: req.params.scope } : {}),
        ...(req.params.grant_type === 'authorization_code' || req.params.grant_type === 'password'
          ? { refresh_token: `rt_${i.token}` }
          : {}),
      },
    };
  });
  origin = auth.origin;
  const api = await startProtectedApi(issuer);
  return {
    auth,
    api,
    issuer,
    rewrite: (code) =>
      code
        .replaceAll('https://auth.example.com', auth.origin)
        // The seed providers' hosts (core README, "Providers"): the same permissive token endpoint.
        .replaceAll('https://yourcompany.logicgate.com', auth.origin)
        .replaceAll('https://platform.example.com', auth.origin)
        .replaceAll('https://api.example.com', api.origin),
    env: {
      CLIENT_ID: EXAMPLE_CLIENT.id,
      CLIENT_SECRET: EXAMPLE_CLIENT.secret,
      TOKEN_URL: `${auth.origin}/oauth2/token`,
      API_URL: api.origin,
      KEYFOB_TOKEN_URL: `${auth.origin}/oauth2/token`,
      KEYFOB_CLIENT_ID: EXAMPLE_CLIENT.id,
      KEYFOB_CLIENT_SECRET: EXAMPLE_CLIENT.secret,
      RISK_CLOUD_CLIENT_ID: EXAMPLE_CLIENT.id,
      RISK_CLOUD_CLIENT_SECRET: EXAMPLE_CLIENT.secret,
      RISK_CLOUD_ACCESS_KEY: issuer.issue(3600).token,
      PLATFORM_USERNAME: 'alice',
      PLATFORM_PASSWORD: 'alice-password-0123',
    },
    close: async () => {
      await Promise.all([auth.close(), api.close()]);
    },
  };
}
