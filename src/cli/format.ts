/** Small text helpers shared by the CLI commands: shapes, numbers, aligned tables, option parsers. */
import { InvalidArgumentError } from 'commander';
import type { Dim } from '../model/onnx-model.js';

/** Commands write through `process.stdout.write` (not console.log) so output is one stream, in order. */
export function writeOut(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** JSON for `--json`: non-finite numbers (an infinite difference) become strings, not `null`. */
export function writeJson(value: unknown): void {
  writeOut(
    JSON.stringify(value, (_key, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2),
  );
}

/** `[batch,64,56,56]`; `?` when the shape is not declared. */
export function formatDims(dims: readonly Dim[] | undefined): string {
  return dims ? `[${dims.join(',')}]` : '?';
}

export function formatPercent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}

export function formatFlops(flops: number): string {
  if (flops >= 1e9) return `${(flops / 1e9).toFixed(2)} GFLOPs`;
  if (flops >= 1e6) return `${(flops / 1e6).toFixed(2)} MFLOPs`;
  if (flops >= 1e3) return `${(flops / 1e3).toFixed(2)} kFLOPs`;
  return `${Math.round(flops)} FLOPs`;
}

/** A difference such as 3.2e-7, or "infinite" when an output was missing or NaN. */
export function formatDiff(x: number): string {
  if (!Number.isFinite(x)) return 'infinite';
  return x === 0 ? '0' : x.toExponential(1).replace('.0e', 'e');
}

export type Align = 'left' | 'right';

/** Lays out rows in columns two spaces apart; trailing spaces are trimmed. */
export function formatTable(headers: string[], rows: string[][], align: Align[] = []): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? '').length)));
  const render = (cells: string[]): string =>
    cells
      .map((cell, c) => (align[c] === 'right' ? cell.padStart(widths[c] ?? 0) : cell.padEnd(widths[c] ?? 0)))
      .join('  ')
      .trimEnd();
  return [render(headers), ...rows.map(render)].join('\n');
}

/** Commander parser for a share of compute: `0.05` or `5%`, within [0, 1]. */
export function parseFraction(value: string): number {
  const percent = value.trim().endsWith('%');
  const x = Number(percent ? value.trim().slice(0, -1) : value);
  const fraction = percent ? x / 100 : x;
  if (value.trim() === '' || !Number.isFinite(fraction) || fraction < 0 || fraction > 1) {
    throw new InvalidArgumentError(`expected a fraction between 0 and 1 (or a percentage), got '${value}'.`);
  }
  return fraction;
}

export function parsePositiveInt(value: string): number {
  const x = Number(value);
  if (!Number.isInteger(x) || x < 1) throw new InvalidArgumentError(`expected a positive integer, got '${value}'.`);
  return x;
}

/** Commander parser for a repeatable, comma-separated list option (`--cuts a,b --cuts c`). */
export function collectList(value: string, previous: string[] = []): string[] {
  return [
    ...previous,
    ...value
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== ''),
  ];
}
