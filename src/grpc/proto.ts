/**
 * Loads `grpc_service.proto` (the KServe v2 gRPC protocol) at run time with proto-loader, and
 * describes the plain objects proto-loader hands us with the options below.
 *
 * The .proto is not compiled to JS: it is read from `<package root>/src/grpc/grpc_service.proto`,
 * the package root being found by walking up from this module (src/config/package-root.ts). That
 * resolves the same from src/grpc under tsx/vitest and from dist/src/grpc once built, with no
 * copy step (offramp is used as a clone, so src/ is always there next to dist/).
 */
import { join } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { packageRoot } from '../config/package-root.js';

/**
 * How proto-loader maps messages to objects. `longs: String`: int64/uint64 values (shapes,
 * INT64/UINT64 contents, int64 parameters) arrive as decimal strings, so nothing above 2^53 is
 * silently rounded; the converters turn them into numbers or bigints and check the range. Outgoing
 * int64 fields accept numbers or decimal strings. `defaults: true`: absent fields come as '' / 0 /
 * [] / {} / null (messages), so the converters never see `undefined`. `oneofs: true`: an
 * InferParameter names its set member in `parameter_choice`.
 */
export const PROTO_LOADER_OPTIONS: protoLoader.Options = Object.freeze({
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
});

export const INFERENCE_SERVICE_NAME = 'inference.GRPCInferenceService';

/** Absolute path of grpc_service.proto. */
export function protoPath(): string {
  return join(packageRoot(), 'src', 'grpc', 'grpc_service.proto');
}

let cachedService: protoLoader.ServiceDefinition | undefined;

/** The GRPCInferenceService definition (methods with their serializers), for servers and clients. */
export function loadInferenceService(): protoLoader.ServiceDefinition {
  if (cachedService !== undefined) return cachedService;
  const definition = protoLoader.loadSync(protoPath(), PROTO_LOADER_OPTIONS);
  const service = definition[INFERENCE_SERVICE_NAME];
  if (service === undefined || 'format' in service) {
    throw new Error(`${protoPath()} does not define the service ${INFERENCE_SERVICE_NAME}`);
  }
  // A ServiceDefinition maps method names to method definitions; message and enum definitions
  // carry `format` instead (checked above).
  return (cachedService = service);
}

// ---- Objects as proto-loader decodes them (PROTO_LOADER_OPTIONS) ----------------------------

export type ParameterChoice = 'bool_param' | 'int64_param' | 'string_param' | 'double_param' | 'uint64_param';

export interface WireInferParameter {
  bool_param?: boolean;
  /** int64, as a decimal string. */
  int64_param?: string;
  string_param?: string;
  double_param?: number;
  /** uint64, as a decimal string. */
  uint64_param?: string;
  /** The member that is set; absent when none is (or only one this proto does not know). */
  parameter_choice?: ParameterChoice;
}

export type WireParameters = Record<string, WireInferParameter>;

export interface WireTensorContents {
  bool_contents: boolean[];
  int_contents: number[];
  int64_contents: string[];
  uint_contents: number[];
  uint64_contents: string[];
  fp32_contents: number[];
  fp64_contents: number[];
  bytes_contents: Buffer[];
}

export interface WireInferInputTensor {
  name: string;
  datatype: string;
  /** int64 dims as decimal strings. */
  shape: string[];
  parameters: WireParameters;
  contents: WireTensorContents | null;
}

export interface WireRequestedOutput {
  name: string;
  parameters: WireParameters;
}

export interface WireModelInferRequest {
  model_name: string;
  model_version: string;
  id: string;
  parameters: WireParameters;
  inputs: WireInferInputTensor[];
  outputs: WireRequestedOutput[];
  /** Views into the received message: unaligned, and shared with it. */
  raw_input_contents: Buffer[];
}

export interface WireNameVersion {
  name: string;
  version: string;
}

// ---- Objects we hand proto-loader to encode (fromObject accepts partial messages) -----------

export interface OutInferParameter {
  bool_param?: boolean;
  int64_param?: number | string;
  string_param?: string;
  double_param?: number;
}

export type OutParameters = Record<string, OutInferParameter>;

export type OutTensorContents = Partial<WireTensorContents>;

export interface OutInferOutputTensor {
  name: string;
  datatype: string;
  shape: number[];
  parameters?: OutParameters;
  contents?: OutTensorContents;
}

export interface OutModelInferResponse {
  model_name: string;
  model_version: string;
  id: string;
  parameters: OutParameters;
  outputs: OutInferOutputTensor[];
  raw_output_contents?: Buffer[];
}

export interface OutTensorMetadata {
  name: string;
  datatype: string;
  shape: number[];
}

export interface OutModelMetadataResponse {
  name: string;
  versions: string[];
  platform: string;
  inputs: OutTensorMetadata[];
  outputs: OutTensorMetadata[];
}

export interface OutServerMetadataResponse {
  name: string;
  version: string;
  extensions: string[];
}
