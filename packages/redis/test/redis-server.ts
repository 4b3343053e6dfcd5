import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer, Socket } from 'node:net';
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
