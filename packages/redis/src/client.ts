import { ConfigurationError, ErrorCode, KeyfobError, redact } from '@keyfob/core';

/** A Redis call failed; the message names the operation and never carries a command argument. */
export class RedisTokenStoreError extends KeyfobError {
  constructor(message: string) {
    super(message, { code: ErrorCode.Store });
  }
}

/**
 * The part of an ioredis client (`new Redis(...)`, also a `Cluster`) the store uses. Any object
 * with these methods works, so a wrapper around another client fits too.
 */
export interface IoRedisLikeClient {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, millisecondsToken: 'PX', milliseconds: number): Promise<unknown>;
  set(key: string, value: string, millisecondsToken: 'PX', milliseconds: number, nx: 'NX'): Promise<unknown>;
  del(key: string): Promise<number>;
  eval(script: string, numkeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/**
 * The part of a node-redis v4/v5 client (`createClient()` from `redis` or `@redis/client`) the store
 * uses: it is detected by `isOpen` and sends raw commands with `sendCommand`.
 */
export interface NodeRedisLikeClient {
  readonly isOpen: boolean;
  sendCommand(args: string[]): Promise<unknown>;
}

/**
 * The part of a node-redis v4/v5 cluster client (`createCluster()`, connected) the store uses: its
 * `sendCommand` takes the key that routes the command to the master owning its slot.
 */
export interface NodeRedisClusterLikeClient {
  readonly isOpen: boolean;
  sendCommand(
    firstKey: string | undefined,
    isReadonly: boolean | undefined,
    args: string[],
  ): Promise<unknown>;
  getSlotMaster(slot: number): unknown;
}

/**
 * An ioredis client or `Cluster`, a node-redis v4/v5 client or cluster, or anything shaped like
 * one of them.
 */
export type RedisClientLike = IoRedisLikeClient | NodeRedisLikeClient | NodeRedisClusterLikeClient;

/** What the store needs from Redis, whichever client is behind it. */
export interface RedisCommands {
  get(key: string): Promise<string | null>;
  /** SET key value PX ms [NX]; resolves whether the value was written. */
  setPx(key: string, value: string, ms: number, nx: boolean): Promise<boolean>;
  del(key: string): Promise<number>;
  /** EVAL with one key. */
  eval1(script: string, key: string, arg: string): Promise<unknown>;
}

const text = (v: unknown): string | null =>
  v === null || v === undefined ? null : Buffer.isBuffer(v) ? v.toString('utf8') : String(v);

const isFn = (o: unknown, name: string) => typeof (o as Record<string, unknown>)[name] === 'function';

export function isNodeRedis(client: unknown): client is NodeRedisLikeClient {
  return (
    typeof client === 'object' &&
    client !== null &&
    'isOpen' in client &&
    isFn(client, 'sendCommand') &&
    !isFn(client, 'defineCommand')
  );
}

export function isNodeRedisCluster(client: unknown): client is NodeRedisClusterLikeClient {
  return isNodeRedis(client) && isFn(client, 'getSlotMaster');
}

/** Normalises the client, or throws a ConfigurationError saying what is missing. */
export function commandsFor(client: unknown): RedisCommands {
  if (typeof client !== 'object' || client === null) {
    throw new ConfigurationError('RedisTokenStore: client is required (an ioredis or node-redis client).', {
      hint: "Pass { client: new Redis(...) } from 'ioredis' or { client: createClient(...) } from 'redis'.",
    });
  }
  if (isNodeRedisCluster(client)) {
    // Every command has exactly one key: it routes the command to the master owning that slot.
    const c = client;
    return {
      get: async (key) => text(await c.sendCommand(key, true, ['GET', key])),
      setPx: async (key, value, ms, nx) =>
        text(
          await c.sendCommand(
            key,
            false,
            nx ? ['SET', key, value, 'PX', String(ms), 'NX'] : ['SET', key, value, 'PX', String(ms)],
          ),
        ) === 'OK',
      del: async (key) => Number(await c.sendCommand(key, false, ['DEL', key])),
      eval1: (script, key, arg) => c.sendCommand(key, false, ['EVAL', script, '1', key, arg]),
    };
  }
  if (isNodeRedis(client)) {
    const c = client;
    return {
      get: async (key) => text(await c.sendCommand(['GET', key])),
      setPx: async (key, value, ms, nx) =>
        text(
          await c.sendCommand(
            nx ? ['SET', key, value, 'PX', String(ms), 'NX'] : ['SET', key, value, 'PX', String(ms)],
          ),
        ) === 'OK',
      del: async (key) => Number(await c.sendCommand(['DEL', key])),
      eval1: (script, key, arg) => c.sendCommand(['EVAL', script, '1', key, arg]),
    };
  }
  const missing = ['get', 'set', 'del', 'eval'].filter((m) => !isFn(client, m));
  if (missing.length) {
    throw new ConfigurationError(
      `RedisTokenStore: client has no ${missing.join(', ')} method(s); it is not an ioredis or node-redis client.`,
      {
        hint: 'Pass an ioredis client, a node-redis v4/v5 client, or an object with get/set/del/eval like ioredis (see the README).',
      },
    );
  }
  const c = client as IoRedisLikeClient;
  return {
    get: async (key) => text(await c.get(key)),
    setPx: async (key, value, ms, nx) =>
      text(await (nx ? c.set(key, value, 'PX', ms, 'NX') : c.set(key, value, 'PX', ms))) === 'OK',
    del: async (key) => Number(await c.del(key)),
    eval1: (script, key, arg) => c.eval(script, 1, key, arg),
  };
}

/**
 * An error safe to log: Redis client errors can carry the command and its arguments (the token
 * value being written) in `message`, `command` or `args`; none of that is kept, and no `cause`.
 */
export function storeError(op: string, error: unknown, args: readonly string[]): RedisTokenStoreError {
  let detail = 'unknown error';
  if (error instanceof Error || (typeof error === 'object' && error !== null)) {
    const e = error as { name?: unknown; code?: unknown; message?: unknown };
    let message = typeof e.message === 'string' ? e.message : '';
    message = redact(message, args).replace(/\s+/g, ' ').slice(0, 200);
    const name = typeof e.name === 'string' && e.name !== 'Error' ? e.name : '';
    const code = typeof e.code === 'string' && /^[A-Z0-9_]{2,40}$/.test(e.code) ? e.code : '';
    detail = [name, code, message].filter(Boolean).join(': ') || detail;
  }
  return new RedisTokenStoreError(`RedisTokenStore: ${op} failed (${detail})`);
}
