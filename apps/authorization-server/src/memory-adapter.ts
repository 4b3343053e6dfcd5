import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';

interface Entry {
  payload: AdapterPayload;
  /** Epoch milliseconds, or Infinity. */
  expiresAt: number;
}

/** Models whose records carry a grantId and are dropped when their grant is revoked. */
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

/** Sweep expired records once every this many writes, so a long-running demo does not grow forever. */
const SWEEP_EVERY = 500;

/**
 * In-memory storage for oidc-provider, one per authorization server.
 *
 * oidc-provider's built-in memory adapter keeps ONE process-wide store capped at 1000 records (older records are
 * silently evicted, so grants and refresh tokens could vanish under the benchmark or a long test run) and logs a
 * warning. This one is per server, unbounded but expiring (records are dropped at their `expiresIn`), and is thrown
 * away with the server. Same semantics otherwise: `consume` marks, `revokeByGrantId` drops every grant member.
 */
export function createMemoryAdapterFactory(): { factory: AdapterFactory; clear(): void } {
  const records = new Map<string, Entry>();
  const sessionUids = new Map<string, string>();
  const userCodes = new Map<string, string>();
  const grants = new Map<string, Set<string>>();
  let writes = 0;

  const live = (key: string): Entry | undefined => {
    const entry = records.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt <= Date.now()) {
      drop(key);
      return undefined;
    }
    return entry;
  };

  const drop = (key: string): void => {
    const entry = records.get(key);
    if (!entry) return;
    records.delete(key);
    const { payload } = entry;
    if (payload.uid && sessionUids.get(payload.uid) === key) sessionUids.delete(payload.uid);
    if (payload.userCode && userCodes.get(payload.userCode) === key) userCodes.delete(payload.userCode);
    if (payload.grantId) {
      const members = grants.get(payload.grantId);
      members?.delete(key);
      if (members && members.size === 0) grants.delete(payload.grantId);
    }
  };

  const sweep = (): void => {
    const now = Date.now();
    for (const [key, entry] of records) {
      if (entry.expiresAt <= now) drop(key);
    }
  };

  class MemoryAdapter implements Adapter {
    constructor(private readonly model: string) {}

    private key(id: string): string {
      return `${this.model}:${id}`;
    }

    async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
      const key = this.key(id);
      drop(key);
      const expiresAt =
        typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Number.POSITIVE_INFINITY;
      records.set(key, { payload, expiresAt });
      if (this.model === 'Session' && payload.uid) sessionUids.set(payload.uid, key);
      if (payload.userCode) userCodes.set(payload.userCode, key);
      if (GRANTABLE.has(this.model) && payload.grantId) {
        let members = grants.get(payload.grantId);
        if (!members) {
          members = new Set();
          grants.set(payload.grantId, members);
        }
        members.add(key);
      }
      writes += 1;
      if (writes % SWEEP_EVERY === 0) sweep();
    }

    async find(id: string): Promise<AdapterPayload | undefined> {
      return live(this.key(id))?.payload;
    }

    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      const key = sessionUids.get(uid);
      return key ? live(key)?.payload : undefined;
    }

    async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
      const key = userCodes.get(userCode);
      return key ? live(key)?.payload : undefined;
    }

    async consume(id: string): Promise<void> {
      const entry = live(this.key(id));
      if (entry) entry.payload.consumed = Math.floor(Date.now() / 1000);
    }

    async destroy(id: string): Promise<void> {
      drop(this.key(id));
    }

    async revokeByGrantId(grantId: string): Promise<void> {
      const members = grants.get(grantId);
      if (!members) return;
      // Like oidc-provider's own memory adapter: every member of the grant goes, whatever its model.
      for (const key of [...members]) drop(key);
      grants.delete(grantId);
    }
  }

  return {
    factory: (model: string) => new MemoryAdapter(model),
    clear() {
      records.clear();
      sessionUids.clear();
      userCodes.clear();
      grants.clear();
    },
  };
}
