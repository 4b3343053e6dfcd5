import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** Whether a `redis-server` binary is on PATH. */
export function haveRedisServer(): boolean {
  const r = spawnSync('redis-server', ['--version'], { stdio: 'ignore' });
  return r.status === 0;
}

/**
 * Redis tests run when `redis-server` is installed, and always in CI (where a missing binary fails).
 * Elsewhere they are skipped, loudly.
 */
export const skipRedis = (() => {
  if (haveRedisServer() || process.env.CI) return false;
  console.warn(
    '\n*** @keyfob/redis: redis-server is not on PATH: the Redis tests are SKIPPED. Install it (apt-get install redis-server, brew install redis) to run them. ***\n',
  );
  return true;
})();

/** A free TCP port on 127.0.0.1 (bind port 0, read it, release it). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** One PING over a raw socket; resolves whether `+PONG` came back. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = new Socket();
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.once('error', () => done(false));
    s.once('data', (d) => done(d.toString().startsWith('+PONG')));
    s.connect(port, '127.0.0.1', () => s.write('*1\r\n$4\r\nPING\r\n'));
  });
}

export interface RedisServer {
  port: number;
  url: string;
  /** SIGKILLs the server (no shutdown, no save). */
  kill(): Promise<void>;
  /** Starts it again on the same port (empty: nothing is persisted). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A throwaway `redis-server` on 127.0.0.1 and a free port, persisting nothing; resolves once it answers PING. */
export async function startRedisServer(): Promise<RedisServer> {
  const port = await freePort();
  let child: ChildProcess | undefined;
  const launch = async () => {
    const c = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--save',
        '',
        '--appendonly',
        'no',
        '--protected-mode',
        'yes',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child = c;
    let failed: Error | undefined;
    c.once('error', (e) => {
      failed = e;
    });
    for (let i = 0; i < 100; i++) {
      if (failed) throw new Error(`redis-server could not start: ${failed.message}`);
      if (c.exitCode !== null) throw new Error(`redis-server exited with code ${c.exitCode}`);
      if (await ping(port)) return;
      await sleep(50);
    }
    c.kill('SIGKILL');
    throw new Error(`redis-server did not answer PING on port ${port}`);
  };
  const kill = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = once(c, 'exit');
    c.kill('SIGKILL');
    await exited;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    kill,
    restart: async () => {
      await kill();
      await launch();
    },
    stop: kill,
  };
}

export interface RedisClusterNode {
  port: number;
  /** SIGKILLs this master (its slots become unreachable; the cluster goes to `fail` state). */
  kill(): Promise<void>;
}

export interface RedisCluster {
  /** The masters, each owning a third of the 16,384 slots. */
  nodes: RedisClusterNode[];
  /** `{ host, port }` of every master, for ioredis `new Cluster(...)` / node-redis `createCluster(...)`. */
  rootNodes: { host: string; port: number }[];
  stop(): Promise<void>;
}

/** Runs `redis-cli` against one node; resolves its stdout. */
function redisCli(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn('redis-cli', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    c.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
    });
    c.once('error', reject);
    c.once('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`redis-cli ${args.join(' ')}: ${code} ${err}`)),
    );
  });
}

/**
 * A real Redis Cluster of `masters` Debian `redis-server` processes on loopback ports (no
 * replicas), created with `redis-cli --cluster create`; resolves once every node reports
 * `cluster_state:ok`. Nothing is persisted; the node configs live in a temporary directory.
 */
export async function startRedisCluster(masters = 3): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'keyfob-redis-cluster-'));
  const nodes: RedisClusterNode[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.kill()));
    await rm(dir, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = await freePort();
      // The bus port defaults to port + 10000, which may be out of range or taken: pick one.
      const busPort = await freePort();
      const c = spawn(
        'redis-server',
        [
          '--port',
          String(port),
          '--cluster-port',
          String(busPort),
          '--bind',
          '127.0.0.1',
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          join(dir, `nodes-${port}.conf`),
          '--cluster-node-timeout',
          '1000',
          '--cluster-announce-ip',
          '127.0.0.1',
          '--dir',
          dir,
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const kill = async () => {
        if (c.exitCode !== null || c.signalCode !== null) return;
        const exited = once(c, 'exit');
        c.kill('SIGKILL');
        await exited;
      };
      nodes.push({ port, kill });
      let ok = false;
      for (let t = 0; t < 100 && !ok && c.exitCode === null; t++) {
        ok = await ping(port);
        if (!ok) await sleep(50);
      }
      if (!ok) throw new Error(`cluster node on port ${port} did not answer PING`);
    }
    await redisCli([
      '--cluster',
      'create',
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      '--cluster-replicas',
      '0',
      '--cluster-yes',
    ]);
    for (let t = 0; t < 200; t++) {
      const states = await Promise.all(
        nodes.map((n) => redisCli(['-p', String(n.port), 'cluster', 'info']).catch(() => '')),
      );
      if (states.every((s) => s.includes('cluster_state:ok'))) {
        return { nodes, rootNodes: nodes.map((n) => ({ host: '127.0.0.1', port: n.port })), stop };
      }
      await sleep(50);
    }
    throw new Error('the Redis Cluster did not reach cluster_state:ok');
  } catch (e) {
    await stop();
    throw e;
  }
}

/** The slot of a key, as the cluster computes it (`CLUSTER KEYSLOT`). */
export async function keySlot(port: number, key: string): Promise<number> {
  return Number((await redisCli(['-p', String(port), 'cluster', 'keyslot', key])).trim());
}

/** `ok` or `fail`, as one node sees the cluster (`CLUSTER INFO`). */
export async function clusterState(port: number): Promise<string> {
  const info = await redisCli(['-p', String(port), 'cluster', 'info']).catch(() => '');
  return /cluster_state:(\w+)/.exec(info)?.[1] ?? 'unknown';
}
