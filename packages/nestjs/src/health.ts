import type { TokenManager, TokenManagerStatus } from '@keyfob/core';
import { Inject, Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { DEFAULT_KEYFOB_NAME, getTokenManagerToken, keyfobName } from './tokens.js';

/** Options of {@link KeyfobHealthIndicator.isHealthy}. */
export interface KeyfobHealthOptions {
  /** The managers to report, by `KeyfobModule` name. Defaults to `['default']`. */
  names?: string[];
  /**
   * A manager counts as down once its token requests have failed for this long. Until then the
   * still-valid cached token is being served and the indicator stays up (with `failingSince` set).
   * Defaults to `0` (down at the first failure).
   */
  downAfterMs?: number;
}

/** One manager's part of the health result (times as ISO strings). */
export interface KeyfobManagerHealth {
  status: 'up' | 'down';
  lastSuccessAt: string | null;
  failingSince: string | null;
  consecutiveFailures: number;
  /** `false` after a timeout or network error, `null` before the first token request. */
  endpointReachable: boolean | null;
  /** Error code of the last failure (`KEYFOB_TOKEN_ENDPOINT`, ...), while failing. */
  lastError: string | null;
}

/** The shape `@nestjs/terminus` expects from a health indicator (`HealthIndicatorResult`). */
export type KeyfobHealthResult = Record<
  string,
  { status: 'up' | 'down'; managers: Record<string, KeyfobManagerHealth> }
>;

const iso = (t: number | undefined) => (t === undefined ? null : new Date(t).toISOString());

/**
 * A health indicator for `@nestjs/terminus` (11 or later): reports each keyfob manager's state from
 * what the manager already knows (last success, failing since, token endpoint reachable). A probe
 * never sends a token request. Add it to your module's providers next to `TerminusModule`:
 *
 * ```ts
 * @Get('health') @HealthCheck()
 * check() { return this.health.check([() => this.keyfob.isHealthy('keyfob')]); }
 * ```
 */
@Injectable()
export class KeyfobHealthIndicator {
  constructor(@Inject(ModuleRef) private readonly moduleRef: ModuleRef) {}

  /** `{ [key]: { status, managers: { [name]: ... } } }`: `down` when any listed manager is down. */
  isHealthy(key = 'keyfob', options: KeyfobHealthOptions = {}): KeyfobHealthResult {
    const names = (options.names ?? [DEFAULT_KEYFOB_NAME]).map(keyfobName);
    const downAfterMs = options.downAfterMs ?? 0;
    const now = Date.now();
    const managers: Record<string, KeyfobManagerHealth> = {};
    let down = false;
    for (const name of names) {
      const manager = this.moduleRef.get<TokenManager>(getTokenManagerToken(name), { strict: false });
      const s: TokenManagerStatus = manager.status;
      const failing = s.failingSince !== undefined && now - s.failingSince >= downAfterMs;
      if (failing) down = true;
      managers[name] = {
        status: failing ? 'down' : 'up',
        lastSuccessAt: iso(s.lastSuccessAt),
        failingSince: iso(s.failingSince),
        consecutiveFailures: s.consecutiveFailures,
        endpointReachable: s.endpointReachable ?? null,
        lastError: s.lastError?.code ?? null,
      };
    }
    return { [key]: { status: down ? 'down' : 'up', managers } };
  }
}
