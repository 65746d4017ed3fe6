/**
 * `offramp serve [--config slo.yaml]`: serves prepared models over KServe v2 HTTP and gRPC until
 * SIGINT/SIGTERM, then drains: no new requests, queued and running ones are answered.
 */
import type { Command } from 'commander';
import { resolveServingConfig, configPathFromEnv } from '../config/index.js';
import { startServer } from '../server.js';
import { packageVersion } from './version.js';

interface ServeOptions {
  config?: string;
  accessLog?: boolean;
}

function log(line: string): void {
  process.stderr.write(`${new Date().toISOString()} offramp: ${line}\n`);
}

export function registerServeCommand(program: Command): void {
  program
    .command('serve')
    .description(
      'serve prepared models over KServe v2 HTTP and gRPC (default: the bundled fmnist-resnet model on :8080 and :8081)',
    )
    .option(
      '--config <file>',
      'SLO file (YAML; see src/config/slo.example.yaml); default: $OFFRAMP_CONFIG, else the built-in default',
    )
    .option('--access-log', 'log every HTTP request')
    .action(async (options: ServeOptions) => {
      const configPath = options.config ?? configPathFromEnv();
      const config = await resolveServingConfig(configPath ? { path: configPath } : {});
      const server = await startServer(config, {
        version: packageVersion(),
        ...(configPath ? { configPath } : {}),
        log,
        accessLog: options.accessLog === true,
      });
      await new Promise<void>((resolve) => {
        const stop = (signal: string): void => {
          log(`${signal}: draining (no new requests; queued and running ones are answered)`);
          process.off('SIGINT', onInt);
          process.off('SIGTERM', onTerm);
          void server.close().then(resolve, (err: unknown) => {
            log(`error while stopping: ${(err as Error).message}`);
            resolve();
          });
        };
        const onInt = (): void => stop('SIGINT');
        const onTerm = (): void => stop('SIGTERM');
        process.on('SIGINT', onInt);
        process.on('SIGTERM', onTerm);
      });
      log('stopped');
    });
}
