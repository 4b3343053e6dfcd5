import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const fixture = fileURLToPath(new URL('./fixtures/fleet-member.ts', import.meta.url));

export interface MemberResult {
  /** Token fingerprint -> how many calls got it. */
  tokens: Record<string, number>;
  errors: string[];
  /** Calls that got an already expired token. */
  expired: number;
  calls: number;
  warnings: string[];
}

export interface FleetOptions {
  processes: number;
  tokenUrl: string;
  clientId: string;
  clientSecret: string;
  /** Omit (and `cluster`) to run without a store (every process on its own). */
  redisPort?: number;
  /** A Redis Cluster's master ports, and the client each member uses for it. */
  cluster?: { ports: number[]; client: 'ioredis' | 'node-redis' };
  /** The store's encryptionKey (base64), when encrypting. */
  encryptionKey?: string;
  mode: 'burst' | 'loop';
  calls?: number;
  durationMs?: number;
  /** Per process, from spawn to exit. */
  timeoutMs?: number;
}

/**
 * Spawns `processes` fleet members (test/fixtures/fleet-member.ts under tsx), waits until every one is
 * connected, releases them together (so they really race), and collects their results.
 */
export async function runFleet(o: FleetOptions): Promise<MemberResult[]> {
  const children = Array.from({ length: o.processes }, () => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture], {
      cwd: packageDir,
      env: {
        ...process.env,
        TSX_TSCONFIG_PATH: `${packageDir}tsconfig.json`,
        TOKEN_URL: o.tokenUrl,
        CLIENT_ID: o.clientId,
        CLIENT_SECRET: o.clientSecret,
        REDIS_PORT: o.redisPort === undefined ? '' : String(o.redisPort),
        REDIS_CLUSTER_PORTS: o.cluster ? o.cluster.ports.join(',') : '',
        REDIS_CLIENT: o.cluster?.client ?? '',
        ENCRYPTION_KEY: o.encryptionKey ?? '',
        MODE: o.mode,
        CALLS: String(o.calls ?? 200),
        DURATION_MS: String(o.durationMs ?? 6_000),
      },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    let onReady: () => void = () => {};
    const ready = new Promise<void>((resolve) => {
      onReady = resolve;
    });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes('READY\n')) onReady();
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      err += d;
    });
    const done = new Promise<MemberResult>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`fleet member timed out; stderr: ${err.slice(-2000)}`));
      }, o.timeoutMs ?? 60_000);
      timer.unref();
      child.once('exit', (code) => {
        clearTimeout(timer);
        const line = out.split('\n').find((l) => l.startsWith('RESULT '));
        if (code !== 0 || !line)
          reject(new Error(`fleet member exited with ${code}; stderr: ${err.slice(-2000)}`));
        else resolve(JSON.parse(line.slice('RESULT '.length)) as MemberResult);
      });
    });
    // Keep `done` from being an unhandled rejection while we wait for the others to get ready.
    done.catch(() => {});
    return { child, ready, done };
  });
  try {
    await Promise.race([Promise.all(children.map((c) => c.ready)), Promise.all(children.map((c) => c.done))]);
    for (const c of children) c.child.stdin.end('GO\n');
    return await Promise.all(children.map((c) => c.done));
  } finally {
    for (const c of children)
      if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
  }
}
