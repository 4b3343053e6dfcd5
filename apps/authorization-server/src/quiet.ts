/**
 * oidc-provider prints development notices through console.warn / console.info ("oidc-provider WARNING: ...",
 * "oidc-provider NOTICE: ..."), some at import time (e.g. "Unsupported runtime" on Node 20, which it does run on)
 * and some at the first request (e.g. when a request body was read before it, which this server does on purpose
 * to count token requests). They are noise for a demo/test server whose every setting is deliberate, so they are
 * dropped. Set KEYFOB_AS_VERBOSE=1 to see them.
 */

// biome-ignore lint/suspicious/noControlCharactersInRegex: oidc-provider colours its notices on a TTY.
const NOISE = /^(?:\u001b\[[\d;]*m)?oidc-provider (?:WARNING|NOTICE): /;

let installed = false;

function isNoise(args: unknown[]): boolean {
  return typeof args[0] === 'string' && NOISE.test(args[0]);
}

/** Installs (once per process) a console.warn / console.info filter that drops oidc-provider's notices only. */
export function silenceOidcProviderNotices(): void {
  if (installed || process.env.KEYFOB_AS_VERBOSE === '1') return;
  installed = true;
  const { warn, info } = console;
  console.warn = (...args: unknown[]) => {
    if (!isNoise(args)) warn.apply(console, args);
  };
  console.info = (...args: unknown[]) => {
    if (!isNoise(args)) info.apply(console, args);
  };
}
