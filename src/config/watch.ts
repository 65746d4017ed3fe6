/**
 * Reloads the SLO file on SIGHUP or when it changes on disk. An invalid new file is reported to
 * `onError` and the old config stays in force: a typo never takes a serving model down.
 */
import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import { asOfframpError, type OfframpError } from '../errors.js';
import { loadServingConfig, type Env, type ServingConfig } from './serving-config.js';

export interface WatchOptions {
  /** The config in force now: a reload that yields the same config calls nothing. */
  current?: ServingConfig;
  /** Quiet time after the last file event before reloading (editors write in several steps). Default 100. */
  debounceMs?: number;
  /** Reload on SIGHUP. Default true. */
  sighup?: boolean;
  /** Reload when the file changes. Default true. */
  watchFile?: boolean;
  /** Default: `process.env`. */
  env?: Env;
}

/**
 * Calls `onChange` with each new valid config and `onError` (with OFFRAMP_CONFIG_INVALID, or the
 * error `onChange` threw) when a reload fails. Returns a function that stops watching; no
 * callback runs after it.
 */
export function watchServingConfig(
  path: string,
  onChange: (config: ServingConfig) => void,
  onError: (error: OfframpError) => void,
  options: WatchOptions = {},
): () => void {
  const debounceMs = options.debounceMs ?? 100;
  let last = options.current === undefined ? undefined : fingerprint(options.current);
  let lastError: string | undefined;
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running = false;
  let pending: { forced: boolean } | undefined;

  const reload = async (forced: boolean): Promise<void> => {
    if (running) {
      pending = { forced: forced || (pending?.forced ?? false) };
      return;
    }
    running = true;
    try {
      for (let next: { forced: boolean } | undefined = { forced }; next && !stopped; next = pending) {
        pending = undefined;
        let config: ServingConfig;
        try {
          config = await loadServingConfig(path, { env: options.env });
        } catch (err) {
          const error = asOfframpError(err);
          // The directory watch fires for unrelated files too: repeat an error only when asked (SIGHUP).
          if (!stopped && (next.forced || error.message !== lastError)) onError(error);
          lastError = error.message;
          continue;
        }
        lastError = undefined;
        const print = fingerprint(config);
        if (stopped || print === last) continue;
        last = print;
        try {
          onChange(config);
        } catch (err) {
          onError(asOfframpError(err));
        }
      }
    } finally {
      running = false;
    }
  };

  const schedule = (): void => {
    if (stopped) return;
    clearTimeout(timer);
    timer = setTimeout(() => void reload(false), debounceMs);
  };
  const onSighup = (): void => {
    if (!stopped) void reload(true);
  };

  let watcher: FSWatcher | undefined;
  if (options.watchFile ?? true) {
    // Watch the folder, not the file: editors and Kubernetes ConfigMaps replace the file (a new
    // inode, or a swapped symlink), which a watch on the file itself would not see. Any event
    // triggers a reload; one that changes nothing is dropped by the fingerprint.
    watcher = watch(dirname(path), { persistent: false }, schedule);
    watcher.on('error', (err) => {
      if (!stopped) onError(asOfframpError(err));
    });
  }
  if (options.sighup ?? true) process.on('SIGHUP', onSighup);

  return () => {
    stopped = true;
    clearTimeout(timer);
    watcher?.close();
    process.off('SIGHUP', onSighup);
  };
}

function fingerprint(config: ServingConfig): string {
  // `source` is the same path every time; compare what was configured.
  return JSON.stringify({ server: config.server, models: config.models });
}
