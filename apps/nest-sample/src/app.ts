import 'reflect-metadata';
import { TokenManager } from '@keyfob/core';
import type { LoggerService, LogLevel } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { appModule } from './app.module.js';
import { type NestSampleEnv, readConfig } from './config.js';
import { type NestSampleStats, SampleStats } from './stats.js';

export type { NestSampleEnv } from './config.js';
export type { NestSampleStats } from './stats.js';

export interface NestSample {
  /** `http://127.0.0.1:<port>`; `GET <url>/upstream` returns the protected API's JSON. */
  url: string;
  /** Closes the HTTP server and the token manager (nothing keeps the process alive afterwards). */
  close(): Promise<void>;
  stats(): NestSampleStats;
}

export interface NestSampleOptions {
  /** Nest logger: `false` for none. Defaults to `['log', 'warn', 'error']`. */
  logger?: LoggerService | LogLevel[] | false;
}

/**
 * Starts the sample in-process on 127.0.0.1. Rejects with keyfob's ConfigurationError when an
 * environment variable is missing or the keyfob options are wrong (before listening).
 */
export async function startNestSample(
  env: NestSampleEnv,
  options: NestSampleOptions = {},
): Promise<NestSample> {
  const config = readConfig(env);
  const counters = new SampleStats();
  const app = await NestFactory.create(appModule(config, counters), {
    logger: options.logger ?? ['log', 'warn', 'error'],
    // Reject instead of exiting the process, so callers (tests, the demo) see the error.
    abortOnError: false,
  });
  const tokens = app.get(TokenManager);
  tokens.on('tokenFetched', () => {
    counters.tokensFetched++;
  });
  tokens.on('tokenRefreshed', () => {
    counters.tokensRefreshed++;
  });
  tokens.on('tokenInvalidated', () => {
    counters.tokensInvalidated++;
  });
  try {
    await app.listen(config.port, '127.0.0.1');
  } catch (e) {
    await app.close();
    throw e;
  }
  const address = app.getHttpServer().address() as { port: number };
  const url = `http://127.0.0.1:${address.port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    close: () => {
      closing ??= app.close();
      return closing;
    },
    stats: () => counters.snapshot(),
  };
}
