/**
 * `offramp serve [--config slo.yaml]`: serves prepared models over KServe v2 HTTP and gRPC until
 * SIGINT/SIGTERM, then drains (src/server.ts, `close`): readiness turns 503 at once, new requests
 * are refused with OFFRAMP_SHUTTING_DOWN, every request already accepted is answered, and the
 * process exits 0.
 *
 * A drain that does not end is cut short, with a line naming what was still in flight:
 * - after `server.drain_timeout_ms`: exit code 1;
 * - at a second SIGINT/SIGTERM: exit code 128 + the signal's number (130, 143), as if the signal
 *   had ended the process, which is what the operator asked for.
 * Either way the process ends at once (bin/offramp.js exits on a non-zero code), even with a batch
 * still running in a worker thread.
 */
import { constants } from 'node:os';
import type { Command } from 'commander';
import { resolveServingConfig, configPathFromEnv } from '../config/index.js';
import { startServer, type RunningServer } from '../server.js';
import { CliError } from './errors.js';
import { packageVersion } from './version.js';

interface ServeOptions {
  config?: string;
  accessLog?: boolean;
}

/** Exit code when the drain timeout passes. */
export const EXIT_DRAIN_TIMEOUT = 1;

const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
type StopSignal = (typeof STOP_SIGNALS)[number];

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} offramp: ${line}\n`);
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'serve prepared models over KServe v2 HTTP and gRPC (default: the bundled fmnist-resnet and spam-bert models on :8080 and :8081)',
    )
    .option(
      '--config <file>',
      'SLO file (YAML; see src/config/slo.example.yaml); default: $OFFRAMP_CONFIG, else the built-in default',
    )
    .option('--access-log', 'log every HTTP request')
    .action(async (options: ServeOptions) => {
      const configPath = options.config ?? configPathFromEnv();
      const config = await resolveServingConfig(configPath ? { path: configPath } : {});
      // Listening from before the start: a supervisor may signal as soon as it sees the listening
      // line (or before), and a signal with no listener yet would kill the process outright.
      const signals = new StopSignals();
      try {
        const server = await startServer(config, {
          version: packageVersion(),
          ...(configPath ? { configPath } : {}),
          log,
          accessLog: options.accessLog === true,
        });
        await drainOnSignal(server, signals, config.server.drainTimeoutMs);
      } finally {
        signals.dispose();
      }
      log('stopped');
    });
}

/** SIGINT and SIGTERM, recorded from construction on and handed to a listener once there is one. */
class StopSignals {
  private readonly received: StopSignal[] = [];
  private listener: ((signal: StopSignal) => void) | undefined;
  private readonly handlers = STOP_SIGNALS.map((signal) => {
    const handler = () => {
      if (this.listener) this.listener(signal);
      else this.received.push(signal);
    };
    process.on(signal, handler);
    return { signal, handler };
  });

  /** Calls `listener` with every signal, those received before included. */
  listen(listener: (signal: StopSignal) => void): void {
    this.listener = listener;
    for (const signal of this.received.splice(0)) listener(signal);
  }

  dispose(): void {
    for (const { signal, handler } of this.handlers) process.off(signal, handler);
  }
}

/**
 * Resolves after the first SIGINT/SIGTERM and a clean drain; throws a CliError carrying the exit
 * code when the drain is cut short (timeout or second signal).
 */
async function drainOnSignal(server: RunningServer, signals: StopSignals, drainTimeoutMs: number): Promise<void> {
  let draining = false;
  let drainTimer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      signals.listen((signal) => {
        if (draining) {
          reject(
            new CliError(
              `second signal (${signal}) while draining: stopping now; still in flight: ${server.inFlight()}`,
              128 + constants.signals[signal],
            ),
          );
          return;
        }
        draining = true;
        // Logged once readiness is already false (close() turns it synchronously, below).
        const closed = server.close();
        log(
          `${signal}: draining (readiness 503, new requests refused, accepted ones answered; ` +
            `up to ${drainTimeoutMs} ms, a second signal stops at once)`,
        );
        drainTimer = setTimeout(
          () =>
            reject(
              new CliError(
                `drain timeout (${drainTimeoutMs} ms) reached; still in flight: ${server.inFlight()}`,
                EXIT_DRAIN_TIMEOUT,
              ),
            ),
          drainTimeoutMs,
        );
        closed.then(resolve, (err: unknown) =>
          reject(new CliError(`error while stopping: ${err instanceof Error ? err.message : String(err)}`)),
        );
      });
    });
  } finally {
    // Nothing of serve may keep the process alive once it is done.
    clearTimeout(drainTimer);
  }
}
