/**
 * A dependency-free progress bar for long CLI work (feature caching, ramp training).
 *
 * On a terminal it redraws one line in place — bar, count, percentage, rate, ETA and a detail
 * text — at most ten times a second. Elsewhere (CI logs, pipes) it writes one line when the
 * work starts and one when it is done, so logs stay short. With `quiet` (the caller's `--json`)
 * it writes nothing, so stdout/stderr carry only the machine-readable result.
 */

export interface Progress {
  /** Records `n` more units done; `detail` (e.g. the current item) is shown on a terminal. */
  tick(n?: number, detail?: string): void;
  /** Finishes the bar and prints a final line, with `summary` appended when given. */
  done(summary?: string): void;
}

/** The part of a stream the bar uses; `process.stderr` fits. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  /** Write nothing at all (the caller prints JSON). */
  quiet?: boolean;
  /** Clock in milliseconds; replaceable so tests need no real time. */
  now?: () => number;
}

const REDRAW_INTERVAL_MS = 100;
const BAR_WIDTH = 20;

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const pad = (x: number): string => String(x).padStart(2, '0');
  if (s < 3600) return `${Math.floor(s / 60)}:${pad(s % 60)}`;
  return `${Math.floor(s / 3600)}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
}

function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond <= 0) return '–/s';
  if (perSecond >= 100) return `${Math.round(perSecond)}/s`;
  if (perSecond >= 1) return `${perSecond.toFixed(1)}/s`;
  return `${(1 / perSecond).toFixed(1)}s/it`;
}

export function createProgress(
  label: string,
  total: number,
  stream: ProgressStream = process.stderr,
  options: ProgressOptions = {},
): Progress {
  const now = options.now ?? ((): number => performance.now());
  if (options.quiet) return { tick: () => undefined, done: () => undefined };

  const started = now();
  const tty = stream.isTTY === true;
  let count = 0;
  let detail = '';
  let lastDraw = Number.NEGATIVE_INFINITY;
  let finished = false;

  const elapsedSeconds = (): number => (now() - started) / 1000;

  const line = (): string => {
    const seconds = elapsedSeconds();
    const rate = seconds > 0 ? count / seconds : 0;
    const parts = [label];
    if (total > 0) {
      const fraction = Math.min(1, count / total);
      const filled = Math.round(fraction * BAR_WIDTH);
      parts.push(
        `[${'#'.repeat(filled)}${'.'.repeat(BAR_WIDTH - filled)}]`,
        `${count}/${total}`,
        `${Math.floor(fraction * 100)}%`,
      );
    } else {
      parts.push(String(count));
    }
    parts.push(formatRate(rate));
    if (total > 0 && count < total && rate > 0) parts.push(`ETA ${formatDuration((total - count) / rate)}`);
    if (detail) parts.push(detail);
    const text = parts.join(' ');
    // Never wrap: a wrapped line cannot be redrawn with \r.
    const width = (stream.columns ?? 80) - 1;
    return text.length > width ? `${text.slice(0, Math.max(0, width - 1))}…` : text;
  };

  const draw = (): void => {
    lastDraw = now();
    stream.write(`\r${line()}\x1b[K`);
  };

  if (tty) draw();
  else stream.write(`${label}: started${total > 0 ? ` (${total})` : ''}\n`);

  return {
    tick(n = 1, newDetail?: string): void {
      if (finished) return;
      count += n;
      if (newDetail !== undefined) detail = newDetail;
      if (tty && now() - lastDraw >= REDRAW_INTERVAL_MS) draw();
    },
    done(summary?: string): void {
      if (finished) return;
      finished = true;
      const counted = total > 0 ? `${count}/${total}` : String(count);
      const tail = summary ? `: ${summary}` : '';
      const text = `${label}: done ${counted} in ${formatDuration(elapsedSeconds())}${tail}`;
      stream.write(tty ? `\r${text}\x1b[K\n` : `${text}\n`);
    },
  };
}
