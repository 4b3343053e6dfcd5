import { redact } from './redact.js';
import type { KeyfobLogger } from './types.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Structured fields of a log line: never a token or a secret (a token is named by its fingerprint). */
export interface LogFields {
  /** `KeyfobError` code of a failure. */
  code?: string;
  grantType?: string;
  /** HTTP status of the token endpoint's answer. */
  status?: number;
  /** OAuth `error` of the answer (`invalid_client`, ...). */
  oauthError?: string;
  /** Fingerprint of the token concerned. */
  fingerprint?: string;
  subject?: string;
  scope?: string;
}

/** A redacting log function: every line goes through `redact`, a broken logger never breaks delivery. */
export type Log = (level: LogLevel, message: string, fields?: LogFields) => void;

/**
 * How a logger takes structured fields, detected from its shape:
 * - `fields-first`: pino (`logger.warn({ code, ... }, 'keyfob: ...')`), recognised by `child` + `bindings`;
 * - `message-first`: winston (`logger.warn('keyfob: ...', { code, ... })`, recognised by `child` +
 *   `transports`) and Nest's `Logger` (`verbose` + `fatal`: the fields are printed as a second message,
 *   as JSON in Nest's json mode);
 * - `text`: anything else (`console`, ...): one readable line, the fields appended as `key=value`.
 */
export type LogStyle = 'fields-first' | 'message-first' | 'text';

export function logStyleOf(logger: KeyfobLogger): LogStyle {
  const l = logger as unknown as Record<string, unknown>;
  if (typeof l.child === 'function' && typeof l.bindings === 'function') return 'fields-first';
  if (typeof l.child === 'function' && 'transports' in l) return 'message-first';
  if (typeof l.verbose === 'function' && typeof l.fatal === 'function') return 'message-first';
  return 'text';
}

function cleanFields(fields: LogFields): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === '') continue;
    out[k] = typeof v === 'string' ? redact(v) : v;
  }
  return out;
}

/** Binds a user logger (`console`, pino, winston, Nest's `Logger`...) to keyfob's redacted log format. */
export function createLog(logger: KeyfobLogger | undefined): Log {
  if (!logger) return () => {};
  const style = logStyleOf(logger);
  return (level, message, fields) => {
    const line = redact(`keyfob: ${message.replace(/^keyfob: /, '')}`);
    const f = fields === undefined ? undefined : cleanFields(fields);
    let args: unknown[];
    if (f === undefined || Object.keys(f).length === 0) args = [line];
    else if (style === 'fields-first') args = [f, line];
    else if (style === 'message-first') args = [line, f];
    else {
      const pairs = Object.entries(f).map(([k, v]) => `${k}=${v}`);
      args = [`${line} (${pairs.join(' ')})`];
    }
    try {
      const fn =
        level === 'debug'
          ? (logger.debug ?? logger.log)
          : level === 'info'
            ? (logger.info ?? logger.log)
            : logger[level];
      (fn as ((...a: unknown[]) => void) | undefined)?.apply(logger, args);
    } catch {
      // A broken logger must not break token delivery.
    }
  };
}
