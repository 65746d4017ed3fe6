/**
 * The gRPC transport: KServe v2 `inference.GRPCInferenceService` over @grpc/grpc-js. Handlers
 * only convert between protobuf objects and the data plane's types and call the same DataPlane
 * as HTTP (docs/architecture.md); every failure is answered from the error table (src/errors.ts)
 * as the code's gRPC status, the message as details, and the offramp code in the `offramp-code`
 * trailer.
 */
import * as grpc from '@grpc/grpc-js';
import type * as protoLoader from '@grpc/proto-loader';
import type { DataPlane } from '../data-plane/types.js';
import { OfframpError, asOfframpError } from '../errors.js';
import { fromInferResponse, toInferRequest } from './convert.js';
import {
  loadInferenceService,
  type OutModelInferResponse,
  type OutModelMetadataResponse,
  type OutServerMetadataResponse,
  type WireModelInferRequest,
  type WireNameVersion,
} from './proto.js';

export interface GrpcServerOptions {
  dataPlane: DataPlane;
  /** Largest request message accepted (grpc.max_receive_message_length); larger ones get RESOURCE_EXHAUSTED from grpc-js. */
  maxMessageBytes: number;
}

export interface GrpcServer {
  server: grpc.Server;
  /** Binds host:port (0 = any free port), insecure, and serves; resolves to the bound port. */
  start(host: string, port: number): Promise<number>;
  /**
   * Stops taking calls and waits for the running ones (tryShutdown); after `graceMs` cancels
   * whatever is left (forceShutdown), which aborts those requests' signals.
   */
  stop(graceMs?: number): Promise<void>;
  /** Calls received whose answer has not been handed to grpc-js yet (the shutdown waits for none to be left). */
  readonly callsInFlight: number;
}

/** Trailer that carries the stable error code (docs/errors.md) next to the gRPC status. */
export const OFFRAMP_CODE_METADATA_KEY = 'offramp-code';

const DEFAULT_GRACE_MS = 10_000;

export function createGrpcServer(options: GrpcServerOptions): GrpcServer {
  const { dataPlane, maxMessageBytes } = options;
  if (!Number.isSafeInteger(maxMessageBytes) || maxMessageBytes <= 0) {
    throw new RangeError(
      `createGrpcServer: maxMessageBytes must be a positive integer, got ${String(maxMessageBytes)}`,
    );
  }
  const server = new grpc.Server({ 'grpc.max_receive_message_length': maxMessageBytes });
  const calls = { inFlight: 0 };
  const unary = <Req, Res>(handler: Handler<Req, Res>) => answered(handler, calls);

  const implementation: grpc.UntypedServiceImplementation = {
    ServerLive: unary<object, { live: boolean }>(() => ({ live: dataPlane.live() })),
    ServerReady: unary<object, { ready: boolean }>(() => ({ ready: dataPlane.ready() })),
    ModelReady: unary<WireNameVersion, { ready: boolean }>((req) => ({
      ready: dataPlane.modelReady(req.name, optional(req.version)),
    })),
    ServerMetadata: unary<object, OutServerMetadataResponse>(() => {
      const m = dataPlane.serverMetadata();
      return { name: m.name, version: m.version, extensions: m.extensions };
    }),
    ModelMetadata: unary<WireNameVersion, OutModelMetadataResponse>((req) => {
      // `parameters` (labels and other extras) has no field in the protocol: HTTP only.
      const m = dataPlane.modelMetadata(req.name, optional(req.version));
      const tensor = (t: { name: string; datatype: string; shape: number[] }) => ({
        name: t.name,
        datatype: t.datatype,
        shape: t.shape,
      });
      return {
        name: m.name,
        versions: m.versions,
        platform: m.platform,
        inputs: m.inputs.map(tensor),
        outputs: m.outputs.map(tensor),
      };
    }),
    ModelInfer: unary<WireModelInferRequest, OutModelInferResponse>(async (wire, call) => {
      // grpc-js hands a unary handler the decoded message, so admission comes as early as it can:
      // before the tensors are converted and validated (see DataPlane.admission).
      const refusal = dataPlane.admission(wire.model_name, optional(wire.model_version));
      if (refusal) throw refusal;
      const controller = new AbortController();
      const abort = () => controller.abort(new OfframpError('OFFRAMP_CANCELLED'));
      // 'cancelled' also fires when the client's deadline passes or forceShutdown ends the call.
      call.once('cancelled', abort);
      if (call.cancelled) abort();
      try {
        const response = await dataPlane.infer(toInferRequest(wire, controller.signal));
        // Answer in the form the client sent: a client that sent raw_input_contents (Triton's
        // clients always do) gets raw_output_contents, which Triton always answers with and its
        // clients expect; one that sent typed contents gets typed contents, which every KServe
        // client reads.
        return fromInferResponse(response, wire.raw_input_contents.length > 0);
      } finally {
        call.removeListener('cancelled', abort);
      }
    }),
  };
  server.addService(guardDeserializers(loadInferenceService()), implementation);

  return {
    server,
    get callsInFlight() {
      return calls.inFlight;
    },
    start(host, port) {
      const address = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
      return new Promise<number>((resolve, reject) => {
        server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, bound) =>
          err ? reject(err) : resolve(bound),
        );
      });
    },
    stop(graceMs = DEFAULT_GRACE_MS) {
      return new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, graceMs);
        timer.unref();
        // The callback's error only says the server was not running; stopped either way.
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

function optional(value: string): string | undefined {
  return value === '' ? undefined : value;
}

/**
 * What a guarded deserializer returns for bytes that do not decode. grpc-js itself would answer
 * a throwing deserializer with INTERNAL "Error deserializing request" without calling the handler;
 * returning this instead lets the handler answer OFFRAMP_MALFORMED_PROTOBUF (INVALID_ARGUMENT:
 * the client's fault, not the server's) with the offramp-code trailer like every other error.
 */
class MalformedRequest {
  constructor(
    readonly message: string,
    readonly reason: string,
  ) {}
}

function guardDeserializers(service: protoLoader.ServiceDefinition): grpc.ServiceDefinition {
  const guarded: Record<string, grpc.MethodDefinition<object, object>> = {};
  for (const [name, method] of Object.entries(service)) {
    const message = `inference.${name}Request`;
    guarded[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): object => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return new MalformedRequest(message, err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return guarded;
}

type Handler<Req, Res> = (request: Req, call: grpc.ServerUnaryCall<Req | MalformedRequest, Res>) => Res | Promise<Res>;

/**
 * A unary handler that answers `handler`'s result, or its error as a coded gRPC status, and
 * counts the call in `calls.inFlight` until then.
 */
function answered<Req, Res>(
  handler: Handler<Req, Res>,
  calls: { inFlight: number },
): grpc.handleUnaryCall<Req | MalformedRequest, Res> {
  return (call, callback) => {
    calls.inFlight++;
    const request = call.request;
    const result = new Promise<Res>((resolve) => {
      if (request instanceof MalformedRequest) {
        throw new OfframpError('OFFRAMP_MALFORMED_PROTOBUF', { message: request.message, reason: request.reason });
      }
      resolve(handler(request, call));
    });
    void result
      .then(
        (response) => callback(null, response),
        (err: unknown) => callback(toStatus(err)),
      )
      .finally(() => calls.inFlight--);
  };
}

function toStatus(err: unknown): Partial<grpc.StatusObject> {
  const e = asOfframpError(err);
  const metadata = new grpc.Metadata();
  metadata.set(OFFRAMP_CODE_METADATA_KEY, e.code);
  return { code: e.grpcStatus, details: e.message, metadata };
}
