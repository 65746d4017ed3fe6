import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, ERROR_TABLE, OfframpError, asOfframpError, toHttpBody, type ErrorCode } from '../src/errors.js';

/** @grpc/grpc-js `status` names, to check the names docs/errors.md prints next to the numbers. */
const GRPC_STATUS_NAMES: Record<number, string> = {
  1: 'CANCELLED',
  2: 'UNKNOWN',
  3: 'INVALID_ARGUMENT',
  4: 'DEADLINE_EXCEEDED',
  5: 'NOT_FOUND',
  6: 'ALREADY_EXISTS',
  7: 'PERMISSION_DENIED',
  8: 'RESOURCE_EXHAUSTED',
  9: 'FAILED_PRECONDITION',
  10: 'ABORTED',
  11: 'OUT_OF_RANGE',
  12: 'UNIMPLEMENTED',
  13: 'INTERNAL',
  14: 'UNAVAILABLE',
  15: 'DATA_LOSS',
  16: 'UNAUTHENTICATED',
};

interface DocRow {
  code: string;
  http: number;
  grpc: number;
  grpcName: string;
}

async function documentedRows(): Promise<DocRow[]> {
  const text = await readFile(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const rows: DocRow[] = [];
  for (const line of text.split('\n')) {
    const m = /^\|\s*`(OFFRAMP_\w+)`\s*\|\s*(\d+)\s*\|\s*(\d+)\s+(\w+)\s*\|/.exec(line);
    if (m) rows.push({ code: m[1]!, http: Number(m[2]), grpc: Number(m[3]), grpcName: m[4]! });
  }
  return rows;
}

/** Makes a value for every `{placeholder}` of a template. */
function sampleArgs(template: string): Record<string, string> {
  return Object.fromEntries([...template.matchAll(/\{(\w+)\}/g)].map((m) => [m[1]!, `<${m[1]!}>`]));
}

describe('error table', () => {
  it('documents every code in docs/errors.md with the same HTTP and gRPC status', async () => {
    const rows = await documentedRows();
    for (const code of ERROR_CODES) {
      const row = rows.find((r) => r.code === code);
      expect(row, `${code} is missing from docs/errors.md`).toBeDefined();
      expect(row!.http, `${code} HTTP status in docs/errors.md`).toBe(ERROR_TABLE[code].httpStatus);
      expect(row!.grpc, `${code} gRPC status in docs/errors.md`).toBe(ERROR_TABLE[code].grpcStatus);
      expect(row!.grpcName, `${code} gRPC status name in docs/errors.md`).toBe(GRPC_STATUS_NAMES[row!.grpc]);
    }
  });

  it('has every code that docs/errors.md lists, each listed once', async () => {
    const rows = await documentedRows();
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows)
      expect(ERROR_CODES, `${row.code} is documented but not in src/errors.ts`).toContain(row.code);
    expect(new Set(rows.map((r) => r.code)).size).toBe(rows.length);
  });

  it('has unique, well-formed codes with 4xx/5xx HTTP statuses and real gRPC statuses', () => {
    expect(new Set(ERROR_CODES).size).toBe(ERROR_CODES.length);
    for (const code of ERROR_CODES) {
      const spec = ERROR_TABLE[code];
      expect(code).toMatch(/^OFFRAMP_[A-Z][A-Z0-9_]*$/);
      expect(spec.httpStatus, code).toBeGreaterThanOrEqual(400);
      expect(spec.httpStatus, code).toBeLessThan(600);
      // 0 is OK, 2 is UNKNOWN: neither is a useful answer to a client.
      expect(GRPC_STATUS_NAMES[spec.grpcStatus], code).toBeDefined();
      expect(spec.grpcStatus, code).not.toBe(2);
      expect(spec.doc.length, code).toBeGreaterThan(10);
    }
  });

  it('fills every placeholder of every message', () => {
    for (const code of ERROR_CODES) {
      const args = sampleArgs(ERROR_TABLE[code].message);
      // Runtime loop over all codes: the per-code argument types cannot be checked here.
      const err = new (OfframpError as new (c: ErrorCode, a: Record<string, string>) => OfframpError)(code, args);
      expect(err.message, code).not.toMatch(/\{\w+\}/);
      for (const value of Object.values(args)) expect(err.message, code).toContain(value);
    }
  });
});

describe('OfframpError', () => {
  it('names its arguments in the message and carries code, statuses and details', () => {
    const err = new OfframpError('OFFRAMP_WRONG_SHAPE', {
      input: 'pixels',
      expected: '[-1,1,28,28]',
      got: '[2,28,28]',
    });
    expect(err).toBeInstanceOf(Error);
    expect(err.name).toBe('OfframpError');
    expect(err.message).toBe("input 'pixels' has shape [2,28,28]; the model expects [-1,1,28,28]");
    expect(err.code).toBe('OFFRAMP_WRONG_SHAPE');
    expect(err.httpStatus).toBe(400);
    expect(err.grpcStatus).toBe(3);
    expect(err.details).toEqual({ input: 'pixels', expected: '[-1,1,28,28]', got: '[2,28,28]' });
    expect(OfframpError.is(err, 'OFFRAMP_WRONG_SHAPE')).toBe(true);
    expect(OfframpError.is(err, 'OFFRAMP_INTERNAL')).toBe(false);
  });

  it('needs no arguments for codes whose message has no placeholder', () => {
    const err = new OfframpError('OFFRAMP_CANCELLED');
    expect(err.message).toBe('request was cancelled by the client');
    expect(err.details).toBeUndefined();
  });

  it('refuses, at compile time, a call that leaves out a message argument', () => {
    // @ts-expect-error `got` is missing
    const err = new OfframpError('OFFRAMP_WRONG_SHAPE', { input: 'pixels', expected: '[1]' });
    expect(err.message).toContain('{got}');
  });

  it('keeps the cause and merges extra details', () => {
    const cause = new Error('ORT failure');
    const err = new OfframpError(
      'OFFRAMP_INFERENCE_FAILED',
      { model: 'm', reason: 'ORT failure' },
      { cause, details: { batch: 4 } },
    );
    expect(err.cause).toBe(cause);
    expect(err.details).toEqual({ model: 'm', reason: 'ORT failure', batch: 4 });
  });
});

describe('asOfframpError and toHttpBody', () => {
  it('passes OfframpErrors through unchanged', () => {
    const err = new OfframpError('OFFRAMP_MODEL_NOT_FOUND', { model: 'x' });
    expect(asOfframpError(err)).toBe(err);
  });

  it('wraps anything else as OFFRAMP_INTERNAL with the original message and cause', () => {
    const cause = new TypeError('boom');
    const err = asOfframpError(cause);
    expect(err.code).toBe('OFFRAMP_INTERNAL');
    expect(err.httpStatus).toBe(500);
    expect(err.message).toBe('internal error: boom');
    expect(err.cause).toBe(cause);
    expect(asOfframpError('plain string').message).toBe('internal error: plain string');
    expect(asOfframpError({ a: 1 }).message).toBe('internal error: {"a":1}');
    expect(asOfframpError(undefined).message).toBe('internal error: undefined');
  });

  it('gives the KServe v2 body {error} plus the code', () => {
    expect(toHttpBody(new OfframpError('OFFRAMP_QUEUE_FULL', { model: 'm', limit: 256 }))).toEqual({
      error: "the queue of model 'm' is full (256 requests waiting); retry later",
      code: 'OFFRAMP_QUEUE_FULL',
    });
    expect(toHttpBody(new Error('x'))).toEqual({ error: 'internal error: x', code: 'OFFRAMP_INTERNAL' });
  });
});
