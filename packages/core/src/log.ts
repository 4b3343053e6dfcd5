import { redact } from './redact.js';
import type { KeyfobLogger } from './types.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/** A redacting log function: every line goes through `redact`, a broken logger never breaks delivery. */
export type Log = (level: LogLevel, message: string) => void;

/** Binds a user logger (`console`, pino, Nest's `Logger`...) to keyfob's one redacted line format. */
export function createLog(logger: KeyfobLogger | undefined): Log {
  if (!logger) return () => {};
  return (level, message) => {
    const line = redact(`keyfob: ${message.replace(/^keyfob: /, '')}`);
    try {
      if (level === 'debug') (logger.debug ?? logger.log)?.call(logger, line);
      else if (level === 'info') (logger.info ?? logger.log)?.call(logger, line);
      else logger[level](line);
    } catch {
      // A broken logger must not break token delivery.
    }
  };
}
