import { ErrorCode, type KeyfobError } from '@keyfob/core';

/** The status-specific part of a failed check, in the words of the providers' troubleshooting guides. */
export interface Diagnosis {
  /** One line: what the status means. */
  summary: string;
  /** What to check, most likely cause first. */
  check: string[];
}

const byStatus: Record<number, Diagnosis> = {
  400: {
    summary: '400 Bad Request: the token request is malformed or misses a required field.',
    check: [
      'The request body and its fields: grant_type, scope, audience (KEYFOB_SCOPE, KEYFOB_AUDIENCE).',
      'That the body is formatted as the provider expects: a form body (the default) or properly formatted JSON (KEYFOB_CLIENT_AUTH=json).',
      'That client credentials is a grant this client is allowed to use.',
    ],
  },
  401: {
    summary: '401 Unauthorized: the token endpoint could not verify the client credentials.',
    check: [
      'The client id and client secret: missing, incorrect, or for another environment. Reset the secret or confirm the credentials with your admin.',
      "Whether they are improperly encoded: a Basic header is base64 of 'client_id:client_secret'; keyfob form-encodes both first (RFC 6749) and retries with the raw values when they differ.",
      'The client authentication method the endpoint expects (the wrong type of authorization header is refused): basic (Basic header + form body), basic-only (Basic header, no body), body (client_secret_post), json or client_secret_jwt. Set KEYFOB_CLIENT_AUTH or --client-auth.',
    ],
  },
  403: {
    summary:
      '403 Forbidden: the credentials were accepted but this client lacks the permission it asked for.',
    check: [
      'The roles and permissions assigned to this client (or the user behind it); ask the provider admin to confirm.',
      'The requested scope and audience: ask only for what the client is allowed (KEYFOB_SCOPE, KEYFOB_AUDIENCE).',
    ],
  },
  404: {
    summary: '404 Not Found: the token URL is wrong.',
    check: [
      'An incorrect endpoint: the host, the path (e.g. /oauth2/token, /api/v1/account/token) and the environment (sandbox or production) in KEYFOB_TOKEN_URL.',
      'With KEYFOB_ISSUER, that the issuer URL is the one the provider documents for discovery.',
    ],
  },
};

const network: Diagnosis = {
  summary: 'The token endpoint could not be reached.',
  check: [
    'The host and port in the token URL, DNS, a proxy or firewall between here and the provider.',
    'TLS: an https URL needs a certificate this Node process trusts (NODE_EXTRA_CA_CERTS).',
  ],
};

/** What to tell the user about `error`, beyond its message and hint. */
export function diagnose(error: KeyfobError): Diagnosis | undefined {
  const status = (error as { status?: unknown }).status;
  if (typeof status === 'number') {
    if (byStatus[status]) return byStatus[status];
    if (error.code === ErrorCode.TokenResponse) {
      return {
        summary: `The endpoint answered ${status} but not with a token response.`,
        check: ['That the token URL is the token endpoint itself, not a login page or an API gateway.'],
      };
    }
    if (status >= 500) {
      return {
        summary: `${status}: the token endpoint failed on its side.`,
        check: ['Try again later, or check the provider status page.'],
      };
    }
    return undefined;
  }
  if (error.code === ErrorCode.TokenEndpointNetwork || error.code === ErrorCode.TokenEndpointTimeout)
    return network;
  if (error.code === ErrorCode.Configuration && /issuer|discovery|metadata/i.test(error.message)) {
    return {
      summary: 'Discovery failed: the issuer did not serve usable metadata.',
      check: [
        'KEYFOB_ISSUER is exactly the issuer the provider publishes (scheme, host, path; a trailing slash matters).',
        'That the provider serves /.well-known/openid-configuration or /.well-known/oauth-authorization-server; if not, set KEYFOB_TOKEN_URL instead.',
      ],
    };
  }
  if (error.code === ErrorCode.TokenEndpointRedirect) {
    return {
      summary: 'The token URL redirects elsewhere.',
      check: ['Set KEYFOB_TOKEN_URL to the final URL (often http -> https, or a trailing slash).'],
    };
  }
  return undefined;
}
