/**
 * N `offramp serve` replicas on loopback, each on ports of its own that it keeps across restarts,
 * with haproxy in front (lib/haproxy.ts, the documented config): what the scale-out test and the
 * scale-out bench run. Every replica serves the same SLO file.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startHaproxy, type Haproxy } from './haproxy.js';
import { freePort, startServerProcess, type ServerProcess } from './server-process.js';

export interface Replica {
  /** Its server name in haproxy: replica1, replica2, … */
  name: string;
  ports: { http: number; grpc: number };
  logPath: string;
  /** The running process; after a stop or a kill, the ended one until `start`. */
  process: ServerProcess;
}

export interface ReplicaSet {
  replicas: Replica[];
  haproxy: Haproxy;
  /** Starts replica `i` again on its ports (after it exited) and resolves when it is ready. */
  start(i: number): Promise<void>;
  /** Stops haproxy, then every replica still running (SIGTERM, a graceful drain). */
  close(): Promise<void>;
}

/** Distinct free ports: one for haproxy, two (HTTP, gRPC) per replica. */
async function distinctFreePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

/**
 * Writes `config` (an SLO file as an object; JSON is YAML) to `workDir`, starts `count` replicas
 * from it at once, then haproxy over them, and waits until haproxy has every replica UP.
 */
export async function startReplicaSet(options: {
  count: number;
  workDir: string;
  config: object;
}): Promise<ReplicaSet> {
  const configPath = join(options.workDir, 'replica.json');
  await writeFile(configPath, JSON.stringify(options.config, null, 2) + '\n');
  const [lbPort, ...ports] = await distinctFreePorts(1 + 2 * options.count);
  const layout = Array.from({ length: options.count }, (_, i) => ({
    name: `replica${i + 1}`,
    ports: { http: ports[2 * i] as number, grpc: ports[2 * i + 1] as number },
    logPath: join(options.workDir, `replica${i + 1}.log`),
  }));
  const started = await Promise.allSettled(layout.map((r) => startServerProcess(configPath, r.logPath, r.ports)));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(started.flatMap((s) => (s.status === 'fulfilled' ? [s.value.stop()] : [])));
    throw failed.reason;
  }
  const replicas: Replica[] = layout.map((r, i) => ({
    ...r,
    process: (started[i] as PromiseFulfilledResult<ServerProcess>).value,
  }));
  const stopReplicas = () => Promise.all(replicas.map((r) => r.process.stop()));
  let haproxy: Haproxy;
  try {
    haproxy = await startHaproxy({
      workDir: options.workDir,
      port: lbPort as number,
      backends: replicas.map((r) => ({ name: r.name, address: `127.0.0.1:${r.ports.http}` })),
    });
  } catch (err) {
    await stopReplicas();
    throw err;
  }
  try {
    for (const r of replicas) await haproxy.waitFor(r.name, 'UP');
  } catch (err) {
    await haproxy.stop();
    await stopReplicas();
    throw err;
  }
  return {
    replicas,
    haproxy,
    async start(i) {
      const r = replicas[i] as Replica;
      if (r.process.exitCodeNow() === null) throw new Error(`${r.name} is still running`);
      r.process = await startServerProcess(configPath, r.logPath, r.ports);
    },
    async close() {
      await haproxy.stop();
      await stopReplicas();
    },
  };
}
