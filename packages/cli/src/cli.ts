import { parseArgs } from 'node:util';
import {
  ConfigurationError,
  type EnvTokenManagerOptions,
  isKeyfobError,
  KeyfobError,
  optionsFromEnv,
  redactSecrets,
  safeUrl,
  TokenManager,
} from '@keyfob/core';
import { formatDuration, type TokenReport, tokenReport } from './report.js';
import { diagnose } from './troubleshoot.js';

/** Exit codes of the `keyfob` binary. */
export const ExitCode = { Ok: 0, Failure: 1, Usage: 2 } as const;

/** Where `run` reads its configuration and writes its output; defaults to the process's. */
export interface CliIo {
  /** Defaults to `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Defaults to writing to `process.stdout`. */
  stdout?: (text: string) => void;
  /** Defaults to writing to `process.stderr`. */
  stderr?: (text: string) => void;
}

export const USAGE = `Usage: keyfob <command> [options]

Commands:
  check   Discovery (with an issuer), one token request, and a report of what came back
  token   Print "Bearer <token>", e.g. curl -H "Authorization: $(keyfob token)" ...

Options (override the KEYFOB_* environment variables):
  --issuer <url>        KEYFOB_ISSUER: issuer URL, for discovery
  --token-url <url>     KEYFOB_TOKEN_URL: token endpoint
  --client-id <id>      KEYFOB_CLIENT_ID
  --scope <scopes>      KEYFOB_SCOPE: space-delimited
  --client-auth <m>     KEYFOB_CLIENT_AUTH: basic (default), body, json, basic-only,
                        client_secret_jwt (with an issuer: chosen from its metadata)
  --audience <aud>      KEYFOB_AUDIENCE
  --json                check: print the report as JSON
  -h, --help            this text

The client secret is read only from KEYFOB_CLIENT_SECRET, never from the command line.
Exit codes: 0 success, 1 failure (the report says why), 2 bad usage or configuration.
`;

const FLAG_TO_VARIABLE = {
  issuer: 'ISSUER',
  'token-url': 'TOKEN_URL',
  'client-id': 'CLIENT_ID',
  scope: 'SCOPE',
  'client-auth': 'CLIENT_AUTH',
  audience: 'AUDIENCE',
} as const;

const PREFIX = 'KEYFOB_';

/** A message about the merged configuration, naming the flag where a flag gave the value. */
function inFlagTerms(
  message: string,
  values: Partial<Record<keyof typeof FLAG_TO_VARIABLE, unknown>>,
): string {
  let out = message;
  let flags = false;
  for (const [flag, variable] of Object.entries(FLAG_TO_VARIABLE)) {
    if (values[flag as keyof typeof FLAG_TO_VARIABLE] === undefined) continue;
    flags = true;
    out = out.replaceAll(`${PREFIX}${variable}`, `--${flag}`);
  }
  return flags
    ? out.replace('Configuration from the environment', 'Configuration from the flags and the environment')
    : out;
}

/** The JSON printed by `keyfob check --json`. */
export type CheckReport =
  | {
      ok: true;
      command: 'check';
      endpoint: EndpointReport;
      discovery: DiscoveryReport | undefined;
      durationMs: number;
      token: TokenReport;
    }
  | {
      ok: false;
      command: 'check';
      /** Undefined when the configuration itself was refused (`error.code` is `KEYFOB_CONFIGURATION`, exit 2). */
      endpoint: EndpointReport | undefined;
      discovery: DiscoveryReport | undefined;
      error: ErrorReport;
    };

/** What discovery found (with an issuer). */
export interface DiscoveryReport {
  tokenEndpoint: string;
  authorizationEndpoint: string | undefined;
  /** `token_endpoint_auth_methods_supported`. */
  tokenEndpointAuthMethods: readonly string[] | undefined;
}

export interface EndpointReport {
  issuer: string | undefined;
  tokenUrl: string | undefined;
  clientId: string | undefined;
  /** As configured; undefined means the default (`basic`, or with an issuer what its metadata supports). */
  clientAuth: string | undefined;
  scope: string | undefined;
  audience: string | undefined;
}

export interface ErrorReport {
  name: string;
  code: string;
  message: string;
  status: number | undefined;
  /** OAuth `error` from the response body, e.g. `invalid_client`. */
  error: string | undefined;
  errorDescription: string | undefined;
  hint: string | undefined;
  summary: string | undefined;
  check: string[];
}

function errorReport(error: KeyfobError): ErrorReport {
  const e = error as KeyfobError & { status?: number; error?: string; errorDescription?: string };
  const diagnosis = diagnose(error);
  return {
    name: error.name,
    code: error.code,
    message: error.message,
    status: typeof e.status === 'number' ? e.status : undefined,
    error: typeof e.error === 'string' ? e.error : undefined,
    errorDescription: typeof e.errorDescription === 'string' ? e.errorDescription : undefined,
    hint: error.hint,
    summary: diagnosis?.summary,
    check: diagnosis?.check ?? [],
  };
}

function humanCheck(report: CheckReport): string {
  const lines: string[] = [];
  const row = (label: string, value: string) => lines.push(`  ${label.padEnd(16)}${value}`);
  const endpoint = report.endpoint ?? ({} as Partial<EndpointReport>);
  lines.push('keyfob check');
  if (endpoint.issuer) row('issuer', `${endpoint.issuer} (discovery)`);
  if (endpoint.tokenUrl) row('token URL', endpoint.tokenUrl);
  const auth = endpoint.clientAuth ?? (endpoint.issuer ? 'from the issuer metadata' : 'basic');
  row('client id', `${endpoint.clientId} (client auth: ${auth})`);
  const { discovery } = report;
  if (discovery) {
    row('token endpoint', `${discovery.tokenEndpoint} (discovered)`);
    if (discovery.tokenEndpointAuthMethods)
      row('auth methods', discovery.tokenEndpointAuthMethods.join(', '));
  }
  row('scope asked', endpoint.scope ?? '(none: the server default)');
  if (endpoint.audience) row('audience', endpoint.audience);
  lines.push('');
  if (report.ok) {
    const t = report.token;
    lines.push(`OK: a token came back in ${report.durationMs} ms`);
    row('token type', t.tokenType);
    row(
      'lifetime',
      t.lifetimeSeconds === undefined
        ? 'unknown (no expiry given)'
        : `${formatDuration(t.lifetimeSeconds)} (expires ${t.expiresAt})`,
    );
    row('scope granted', t.scope ?? '(not stated by the server)');
    if (t.missingScopes.length) row('NOT granted', t.missingScopes.join(' '));
    row('fingerprint', `${t.fingerprint} (the token itself is not shown)`);
    row('response fields', t.responseFields.join(', '));
    if (t.jwt) {
      lines.push('  JWT claims (decoded, not verified):');
      for (const [k, v] of Object.entries(t.jwt.claims)) {
        const shown =
          typeof v === 'number' && ['exp', 'iat', 'nbf'].includes(k)
            ? `${v} (${new Date(v * 1000).toISOString()})`
            : JSON.stringify(v);
        lines.push(`    ${k.padEnd(14)}${shown}`);
      }
      if (t.jwt.otherClaims.length) lines.push(`    other claims: ${t.jwt.otherClaims.join(', ')}`);
    } else {
      row('format', 'opaque (not a JWT)');
    }
  } else {
    const e = report.error;
    const status = e.status === undefined ? '' : ` (HTTP ${e.status}${e.error ? ` ${e.error}` : ''})`;
    lines.push(`FAILED: ${e.code}${status}`);
    if (e.summary) lines.push(`  ${e.summary}`);
    lines.push(`  ${e.message}`);
    if (e.check.length) {
      lines.push('  Check:');
      for (const c of e.check) lines.push(`    - ${c}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/**
 * Runs the `keyfob` command line (`argv` without `node` and the script) and resolves to its
 * exit code. The client secret comes only from `io.env.KEYFOB_CLIENT_SECRET`.
 */
export async function run(argv: readonly string[], io: CliIo = {}): Promise<number> {
  const env = io.env ?? process.env;
  const stdout = io.stdout ?? ((t: string) => process.stdout.write(t));
  const stderr = io.stderr ?? ((t: string) => process.stderr.write(t));
  const secret = env[`${PREFIX}CLIENT_SECRET`];
  const safe = (text: string) => scrub(text, [secret]);

  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (e) {
    // parseArgs names the option, never its value.
    stderr(`keyfob: ${safe(e instanceof Error ? e.message : String(e))}\n\n${USAGE}`);
    return ExitCode.Usage;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    stdout(USAGE);
    return ExitCode.Ok;
  }
  if (values['client-secret'] !== undefined) {
    stderr(
      'keyfob: --client-secret is refused: a secret on the command line ends up in shell history and in ' +
        'the process list (ps). Set KEYFOB_CLIENT_SECRET in the environment instead, e.g. read -rs KEYFOB_CLIENT_SECRET && export KEYFOB_CLIENT_SECRET\n',
    );
    return ExitCode.Usage;
  }
  const [command, ...extra] = positionals;
  if (command !== 'check' && command !== 'token') {
    stderr(`keyfob: ${command === undefined ? 'a command is required' : 'unknown command'}.\n\n${USAGE}`);
    return ExitCode.Usage;
  }
  if (extra.length) {
    // Not echoed: a stray argument may be a pasted secret.
    stderr(`keyfob: ${command} takes no arguments besides options (${extra.length} given).\n\n${USAGE}`);
    return ExitCode.Usage;
  }
  if (values.json && command !== 'check') {
    stderr('keyfob: --json applies to keyfob check only.\n');
    return ExitCode.Usage;
  }

  const merged: Record<string, string | undefined> = { ...env };
  // A flag naming the endpoint replaces the environment's choice of endpoint, not only that variable.
  if (values.issuer !== undefined && values['token-url'] === undefined) delete merged[`${PREFIX}TOKEN_URL`];
  if (values['token-url'] !== undefined && values.issuer === undefined) delete merged[`${PREFIX}ISSUER`];
  for (const [flag, variable] of Object.entries(FLAG_TO_VARIABLE)) {
    const value = values[flag as keyof typeof FLAG_TO_VARIABLE];
    if (value !== undefined) merged[`${PREFIX}${variable}`] = value;
  }

  let options: EnvTokenManagerOptions;
  try {
    options = optionsFromEnv(merged);
  } catch (e) {
    const message = inFlagTerms(isKeyfobError(e) ? e.message : String(e), values);
    stderr(
      `keyfob: ${safe(message)}\n(flags: --issuer --token-url --client-id --scope --client-auth --audience; the secret only from KEYFOB_CLIENT_SECRET)\n`,
    );
    if (values.json && command === 'check') {
      // A script reading the report gets one on this path too.
      const error = new ConfigurationError(message);
      const report: CheckReport = {
        ok: false,
        command: 'check',
        endpoint: undefined,
        discovery: undefined,
        error: errorReport(error),
      };
      stdout(safe(`${JSON.stringify(report, null, 2)}\n`));
    }
    return ExitCode.Usage;
  }

  const endpoint: EndpointReport = {
    // As configured (without query or fragment): a normalised URL would add a slash the issuer must not have.
    issuer: options.issuer === undefined ? undefined : options.issuer.split(/[?#]/)[0],
    tokenUrl: options.tokenUrl === undefined ? undefined : safeUrl(options.tokenUrl),
    clientId: options.grant.clientId,
    clientAuth: merged[`${PREFIX}CLIENT_AUTH`]?.trim().toLowerCase() || undefined,
    scope: options.grant.scope,
    audience: merged[`${PREFIX}AUDIENCE`]?.trim() || undefined,
  };

  let manager: TokenManager | undefined;
  let discovery: DiscoveryReport | undefined;
  try {
    manager = new TokenManager({ ...options, retries: 1 });
    const metadata = await manager.discover();
    if (metadata) {
      discovery = {
        tokenEndpoint: safeUrl(metadata.tokenEndpoint),
        authorizationEndpoint:
          metadata.authorizationEndpoint === undefined ? undefined : safeUrl(metadata.authorizationEndpoint),
        tokenEndpointAuthMethods: metadata.tokenEndpointAuthMethods,
      };
    }
    const started = Date.now();
    const token = await manager.getToken();
    if (command === 'token') {
      stdout(`${await manager.getAuthorizationHeader()}\n`);
      return ExitCode.Ok;
    }
    const report: CheckReport = {
      ok: true,
      command: 'check',
      endpoint,
      discovery,
      durationMs: Date.now() - started,
      token: tokenReport(token, options.grant.scope, Date.now()),
    };
    const out = values.json ? `${JSON.stringify(report, null, 2)}\n` : humanCheck(report);
    stdout(scrub(out, [secret, token.accessToken, token.refreshToken]));
    return ExitCode.Ok;
  } catch (e) {
    const error =
      e instanceof KeyfobError || isKeyfobError(e)
        ? e
        : new KeyfobError(`Unexpected failure: ${e instanceof Error ? e.name : typeof e}.`);
    if (command === 'token') {
      const d = diagnose(error);
      stderr(
        safe(
          `keyfob: ${error.code}: ${d ? `${d.summary} ` : ''}${error.message}\nRun keyfob check for details.\n`,
        ),
      );
      return ExitCode.Failure;
    }
    const report: CheckReport = {
      ok: false,
      command: 'check',
      endpoint,
      discovery,
      error: errorReport(error),
    };
    stdout(safe(values.json ? `${JSON.stringify(report, null, 2)}\n` : humanCheck(report)));
    return ExitCode.Failure;
  } finally {
    await manager?.close();
  }
}

/**
 * Last line of defence: the secret and token never reach the terminal, in any form they travel in.
 * (Messages are already redacted by core; core's pattern redaction is not applied again, it would hide
 * report fields such as `code`.)
 */
const scrub = redactSecrets;

function parse(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      issuer: { type: 'string' },
      'token-url': { type: 'string' },
      'client-id': { type: 'string' },
      scope: { type: 'string' },
      'client-auth': { type: 'string' },
      audience: { type: 'string' },
      'client-secret': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
}
