/**
 * Every error the serving runtime reports to a client, in one table (documented in docs/errors.md).
 *
 * A code is stable: clients and dashboards match on it, so a code is never renamed or reused.
 * Both transports map from this table: HTTP answers `httpStatus` with `{"error": message, "code"}`
 * (KServe v2 asks for `{"error": "..."}`; `code` is an extra field clients may ignore), gRPC
 * answers `grpcStatus` with the message as details. docs/errors.md documents every code, and
 * test/errors.test.ts keeps the two in step.
 *
 * gRPC statuses are written as numbers with their @grpc/grpc-js `status` name in a comment, so
 * this leaf module (used by config loading and the CLI too) does not pull in grpc-js.
 *
 * Messages are templates: `{name}` is replaced by the argument of that name, and the type of the
 * arguments object is derived from the template, so a call site that forgets one does not compile:
 *
 *     throw new OfframpError('OFFRAMP_WRONG_SHAPE', { input: 'pixels', expected: '[-1,1,28,28]', got: '[2,28,28]' });
 */

interface ErrorSpec {
  /** Template; `{name}` placeholders are filled from the arguments. */
  readonly message: string;
  readonly httpStatus: number;
  /** @grpc/grpc-js `status` value. */
  readonly grpcStatus: number;
  /** One line for docs/errors.md: when this happens and what to do. */
  readonly doc: string;
}

export const ERROR_TABLE = {
  OFFRAMP_MODEL_NOT_FOUND: {
    message: "model '{model}' is not served here",
    httpStatus: 404,
    grpcStatus: 5 /* NOT_FOUND */,
    doc: 'No model of that name is configured; the serving config lists the models served.',
  },
  OFFRAMP_MODEL_VERSION_NOT_FOUND: {
    message: "model '{model}' has no version '{version}'",
    httpStatus: 404,
    grpcStatus: 5 /* NOT_FOUND */,
    doc: 'The model exists but not in the requested version; omit the version to use the served one.',
  },
  OFFRAMP_MODEL_NOT_READY: {
    message: "model '{model}' is not ready: {reason}",
    httpStatus: 503,
    grpcStatus: 14 /* UNAVAILABLE */,
    doc:
      'The model is still loading, failed to load, or its executor workers failed too often to be restarted ' +
      '(the reason says which); retry after `/v2/models/{m}/ready` says true.',
  },
  OFFRAMP_ROUTE_NOT_FOUND: {
    message: '{method} {url} is not an endpoint of this server',
    httpStatus: 404,
    grpcStatus: 12 /* UNIMPLEMENTED */,
    doc: 'The path or method is not part of the KServe v2 protocol (or its extensions) served here.',
  },
  OFFRAMP_MALFORMED_JSON: {
    message: 'request body is not valid JSON: {reason}',
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The HTTP body could not be parsed as JSON.',
  },
  OFFRAMP_MALFORMED_PROTOBUF: {
    message: 'request is not a valid {message} protobuf message: {reason}',
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The gRPC request bytes could not be decoded as the protocol message.',
  },
  OFFRAMP_INVALID_REQUEST: {
    message: 'malformed inference request: {reason}',
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The body parsed but is not a KServe v2 inference request (e.g. `inputs` is not a list, a tensor lacks `data`).',
  },
  OFFRAMP_BODY_TOO_LARGE: {
    message: 'request body exceeds the limit of {limit} bytes (server.max_body_bytes)',
    httpStatus: 413,
    grpcStatus: 8 /* RESOURCE_EXHAUSTED */,
    doc: 'The request is larger than `server.max_body_bytes`; send fewer rows per request or raise the limit.',
  },
  OFFRAMP_MISSING_INPUT: {
    message: "input '{input}' of model '{model}' is missing from the request",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The model needs an input the request does not give.',
  },
  OFFRAMP_UNKNOWN_INPUT: {
    message: "model '{model}' has no input named '{input}' (its inputs: {expected})",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The request gives an input the model does not have.',
  },
  OFFRAMP_UNKNOWN_OUTPUT: {
    message: "model '{model}' has no output named '{output}' (its outputs: {expected})",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The request asks (in `outputs`) for an output the model does not have.',
  },
  OFFRAMP_WRONG_DATATYPE: {
    message: "input '{input}' has datatype {got}; the model expects {expected}",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The input tensor datatype (e.g. FP64) differs from the one the model takes (e.g. FP32).',
  },
  OFFRAMP_WRONG_SHAPE: {
    message: "input '{input}' has shape {got}; the model expects {expected}",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The input shape does not match the model input (-1 in the expected shape matches any size).',
  },
  OFFRAMP_INVALID_TEXT: {
    message: "input '{input}' element {element}: {reason}",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc:
      'A text model got a BYTES element it cannot classify: not valid UTF-8, or empty (nothing but white space). ' +
      'The request is refused before batching; other requests are not affected.',
  },
  OFFRAMP_INVALID_TOKENS: {
    message: "inputs '{ids}' + '{mask}': {reason}",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc:
      'Pre-tokenized input to a text model does not fit it: ids and mask of different shapes, a token id outside ' +
      "the tokenizer's vocabulary, a mask value other than 0/1, a row with no attended token, more ids than the " +
      "model's maximum length, or non-zero token type ids (single texts only).",
  },
  OFFRAMP_ELEMENT_COUNT_MISMATCH: {
    message: "input '{input}' has {got} elements but its shape {shape} needs {expected}",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The tensor data (JSON `data` or raw bytes) holds a different number of elements than the shape says.',
  },
  OFFRAMP_DATA_GIVEN_TWICE: {
    message: "input '{input}' gives its data twice ({how}); send it one way",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc:
      'An input carries both JSON `data` and a `binary_data_size` parameter (HTTP), or both typed `contents` and ' +
      '`raw_input_contents` (gRPC).',
  },
  OFFRAMP_MALFORMED_TENSOR_BYTES: {
    message: "the raw bytes of input '{input}' do not decode: {reason}",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc:
      "Raw tensor bytes (gRPC `raw_input_contents`, an HTTP binary input) are not a whole number of the datatype's " +
      'elements, or a BYTES element (4-byte little-endian length, then its bytes) runs past the end.',
  },
  OFFRAMP_INFERENCE_HEADER_LENGTH: {
    message:
      'Inference-Header-Content-Length is {got}; it must be a whole number of bytes from 0 to the body length, {bodyBytes}',
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc:
      'HTTP binary tensor data: the header giving the length of the JSON part of the body is not an integer, or is ' +
      'larger than the body.',
  },
  OFFRAMP_BINARY_SIZE_MISMATCH: {
    message: "input '{input}' has binary_data_size {got}, but {datatype} of shape {shape} takes {expected} bytes",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc:
      "HTTP binary tensor data: an input's `binary_data_size` differs from its shape's element count × the " +
      "datatype's element size (BOOL and UINT8: 1 byte, FP32: 4, INT64: 8, …).",
  },
  OFFRAMP_BINARY_DATA_LENGTH: {
    message:
      "{actual} bytes of binary tensor data follow the JSON, but the inputs' binary_data_size add up to {declared}",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc:
      'HTTP binary tensor data: the bytes after the JSON part (`Inference-Header-Content-Length`) are not exactly the ' +
      "binary inputs' `binary_data_size`, in input order, without padding.",
  },
  OFFRAMP_BAD_PARAMETER: {
    message: "parameter '{parameter}' is {got}; expected {expected}",
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'A request parameter (e.g. `priority`, `timeout`) has the wrong type or is out of range.',
  },
  OFFRAMP_QUEUE_FULL: {
    message: "the queue of model '{model}' is full ({limit} requests waiting); retry later",
    httpStatus: 429,
    grpcStatus: 8 /* RESOURCE_EXHAUSTED */,
    doc: 'More requests wait than `batching.max_queue_size` allows; the request was rejected, not queued. Back off and retry.',
  },
  OFFRAMP_TIMED_OUT_IN_QUEUE: {
    message: "request to model '{model}' passed its deadline after {waitedMs} ms in the queue and was not run",
    httpStatus: 504,
    grpcStatus: 4 /* DEADLINE_EXCEEDED */,
    doc: 'The request deadline (its `timeout` parameter, or the SLO) passed before a batch took it; it was not run.',
  },
  OFFRAMP_OVERLOADED: {
    message:
      "model '{model}' is overloaded: the queued work would answer this request in ~{predictedMs} ms, past its {deadlineMs} ms deadline",
    httpStatus: 429,
    grpcStatus: 8 /* RESOURCE_EXHAUSTED */,
    doc:
      'The work already queued would keep the request past its deadline (its `timeout` parameter, or the SLO), so it ' +
      'was refused at once instead of timing out in the queue (see docs/architecture.md, Admission). Back off and retry.',
  },
  OFFRAMP_CANCELLED: {
    message: 'request was cancelled by the client',
    httpStatus: 499,
    grpcStatus: 1 /* CANCELLED */,
    doc: 'The client closed the connection or cancelled the call before the answer was ready (499: nginx\'s "client closed request").',
  },
  OFFRAMP_INFERENCE_FAILED: {
    message: "inference failed for model '{model}': {reason}",
    httpStatus: 500,
    grpcStatus: 13 /* INTERNAL */,
    doc: 'The executor backend (onnxruntime) raised an error while running the batch.',
  },
  OFFRAMP_EXECUTOR_FAILED: {
    message: "an executor worker of model '{model}' failed while running this request ({reason}); retry it",
    httpStatus: 503,
    grpcStatus: 14 /* UNAVAILABLE */,
    doc:
      'The worker thread running the batch crashed, exited or stopped answering (`server.worker_timeout_ms`) after ' +
      "part of the batch was answered, or on the batch's second try; the worker is replaced. Safe to retry.",
  },
  OFFRAMP_SHUTTING_DOWN: {
    message: 'the server is shutting down and accepts no new requests',
    httpStatus: 503,
    grpcStatus: 14 /* UNAVAILABLE */,
    doc: 'The server is draining; requests already queued finish, new ones are refused. Retry on another replica.',
  },
  OFFRAMP_CONFIG_INVALID: {
    message: '{problems}',
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'The serving config (file or environment) is invalid; the message lists every problem as `file:line: field: value and what is allowed`.',
  },
  OFFRAMP_UNAUTHORIZED: {
    message: 'admin token is missing or wrong',
    httpStatus: 401,
    grpcStatus: 16 /* UNAUTHENTICATED */,
    doc: 'An admin endpoint was called without the bearer token set in `server.admin_token`.',
  },
  OFFRAMP_ADMIN_DISABLED: {
    message: 'admin endpoints are disabled (no server.admin_token is configured)',
    httpStatus: 403,
    grpcStatus: 7 /* PERMISSION_DENIED */,
    doc: 'Admin endpoints only work when `server.admin_token` (or `OFFRAMP_ADMIN_TOKEN`) is set.',
  },
  OFFRAMP_FAULT_INJECTION_DISABLED: {
    message: 'fault injection is disabled (server.fault_injection is false)',
    httpStatus: 403,
    grpcStatus: 7 /* PERMISSION_DENIED */,
    doc:
      '`POST /v2/models/{m}/admin/faults` crashes or hangs executor workers only when `server.fault_injection` is ' +
      'true (tests, chaos runs; never in production).',
  },
  OFFRAMP_INVALID_ADMIN_REQUEST: {
    message: 'invalid admin request: {reason}',
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc:
      'An admin request body is malformed, names a ramp the model does not have, or gives a threshold the exit ' +
      'policy cannot take (confidence, margin, patience: 0..1; entropy: -1000..0; null: never).',
  },
  OFFRAMP_TUNER_NOT_ONLINE: {
    message: "model '{model}' has no online tuner to {action} (tuner: {kind}); pin thresholds instead",
    httpStatus: 409,
    grpcStatus: 9 /* FAILED_PRECONDITION */,
    doc: 'Pause and resume apply to `tuner: guarded` or `apparate` only; a `static` or `off` model keeps its plan, and its thresholds can still be pinned.',
  },
  OFFRAMP_INTERNAL: {
    message: 'internal error: {reason}',
    httpStatus: 500,
    grpcStatus: 13 /* INTERNAL */,
    doc: 'A bug or an unexpected failure in the server; the message carries the underlying error.',
  },
  OFFRAMP_RAMP_DISABLED: {
    message: "model '{model}' ramp {ramp} is disabled: {reason}",
    httpStatus: 409,
    grpcStatus: 9 /* FAILED_PRECONDITION */,
    doc:
      'A pin names a ramp the server disabled because its head failed (to load, to run, or with non-finite scores); ' +
      'the model serves without it until restarted with a sound head. `GET /v2/models/{m}/exits` lists disabled ramps and why.',
  },
  OFFRAMP_INVALID_WHAT_IF_BUDGET: {
    message: 'what-if budget must be a number in (0, 0.5], got {budget}',
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc:
      "A what-if (the dashboard's budget slider, `/dashboard/api/what-if`) asks for a budget that is not a number, " +
      'or not above 0 and at most 0.5 (a share of rows that may disagree with the full model).',
  },
  OFFRAMP_WHAT_IF_NO_FEEDBACK: {
    message: "model '{model}' has no feedback rows a what-if can be judged on yet: {hint}",
    httpStatus: 409,
    grpcStatus: 9 /* FAILED_PRECONDITION */,
    doc:
      'A what-if is judged on the rows of the feedback window that were run to the end (probes) and carry a reading ' +
      'of every active ramp; there are none yet. Send the model traffic and ask again: in release mode every answered ' +
      'row counts, in drop mode only probes (`exits.drop_feedback_fraction` of rows, more while the tuner learns).',
  },
  OFFRAMP_DASHBOARD_NOT_BUILT: {
    message: 'the dashboard page is not built; run `npm run build` in the offramp package',
    httpStatus: 503,
    grpcStatus: 14 /* UNAVAILABLE */,
    doc:
      '`/dashboard` serves the page bundled into `dist/dashboard/` by `npm run build`; a checkout run from source ' +
      'without a build has no page (its data routes still answer).',
  },
  OFFRAMP_DASHBOARD_FULL: {
    message: 'the dashboard already has {limit} viewers (server.dashboard.max_viewers); close a tab or raise the limit',
    httpStatus: 503,
    grpcStatus: 14 /* UNAVAILABLE */,
    doc:
      'Every dashboard stream (`GET /dashboard/events`, one per open tab) the server allows is open; close a tab, ' +
      'or raise `server.dashboard.max_viewers` (each viewer costs a little CPU per snapshot).',
  },
  OFFRAMP_INVALID_DASHBOARD_REQUEST: {
    message: 'invalid dashboard request: {reason}',
    httpStatus: 400,
    grpcStatus: 3 /* INVALID_ARGUMENT */,
    doc: 'A dashboard API call (`/dashboard/api/what-if`, `/dashboard/api/frontier`) lacks a query parameter or gives one that is not a number.',
  },
} as const satisfies Record<`OFFRAMP_${string}`, ErrorSpec>;

export type ErrorCode = keyof typeof ERROR_TABLE;

export const ERROR_CODES = Object.freeze(Object.keys(ERROR_TABLE) as ErrorCode[]);

/** The `{name}` placeholders of a message template. */
type Placeholders<S extends string> = S extends `${string}{${infer K}}${infer Rest}` ? K | Placeholders<Rest> : never;

export type ErrorArgValue = string | number | bigint | boolean;

/** The arguments a code's message needs, e.g. `{ model: string }` for OFFRAMP_MODEL_NOT_FOUND. */
export type ErrorArgs<C extends ErrorCode> = {
  readonly [K in Placeholders<(typeof ERROR_TABLE)[C]['message']>]: ErrorArgValue;
};

export interface OfframpErrorOptions {
  /** The error this one reports (kept for logs, never sent to clients). */
  cause?: unknown;
  /** Structured extras for logs and admin tools, merged over the message arguments. */
  details?: Readonly<Record<string, unknown>>;
}

type OfframpErrorRest<C extends ErrorCode> = [Placeholders<(typeof ERROR_TABLE)[C]['message']>] extends [never]
  ? [args?: Readonly<Record<string, never>>, options?: OfframpErrorOptions]
  : [args: ErrorArgs<C>, options?: OfframpErrorOptions];

export class OfframpError<C extends ErrorCode = ErrorCode> extends Error {
  readonly code: C;
  readonly httpStatus: number;
  readonly grpcStatus: number;
  /** The message arguments plus any `options.details`; undefined when there are none. */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: C, ...[args, options]: OfframpErrorRest<C>) {
    const spec: ErrorSpec = ERROR_TABLE[code];
    const values: Readonly<Record<string, ErrorArgValue>> = args ?? {};
    super(formatMessage(spec.message, values), options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OfframpError';
    this.code = code;
    this.httpStatus = spec.httpStatus;
    this.grpcStatus = spec.grpcStatus;
    const details = { ...values, ...options?.details };
    this.details = Object.keys(details).length > 0 ? Object.freeze(details) : undefined;
  }

  /** True when `err` is an OfframpError, with the given code when one is given. */
  static is<K extends ErrorCode>(err: unknown, code?: K): err is OfframpError<K> {
    return err instanceof OfframpError && (code === undefined || err.code === code);
  }
}

function formatMessage(template: string, args: Readonly<Record<string, ErrorArgValue>>): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) => {
    const value = args[name];
    // A missing argument is a bug at the call site (types prevent it); keep the placeholder visible.
    return value === undefined ? whole : String(value);
  });
}

/** Whether a thrown value is one of ours (typed with the full code union, unlike `instanceof`'s `OfframpError<any>`). */
export function isOfframpError(err: unknown): err is OfframpError {
  return err instanceof OfframpError;
}

/**
 * Any thrown value as an OfframpError: OfframpErrors pass through, anything else becomes
 * OFFRAMP_INTERNAL carrying the original message, with the original as `cause`.
 */
export function asOfframpError(err: unknown): OfframpError {
  if (isOfframpError(err)) return err;
  const reason = err instanceof Error ? err.message || err.name : typeof err === 'string' ? err : safeString(err);
  return new OfframpError('OFFRAMP_INTERNAL', { reason }, { cause: err });
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

export interface HttpErrorBody {
  /** KServe v2: the error message. */
  error: string;
  /** Stable offramp code (docs/errors.md). */
  code: ErrorCode;
}

/** The JSON body of an HTTP error answer; non-Offramp errors are reported as OFFRAMP_INTERNAL. */
export function toHttpBody(err: unknown): HttpErrorBody {
  const e = asOfframpError(err);
  return { error: e.message, code: e.code };
}
