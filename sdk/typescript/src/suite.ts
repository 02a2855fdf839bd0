// What every transport shares: the options, the clients of the three services, and the
// suite's defaults (a deadline on every call, credentials on every call).
import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";

import { MaintenanceService } from "./gen/manufacturing/maintenance/v1/maintenance_service_pb.js";
import { QualityService } from "./gen/manufacturing/quality/v1/quality_service_pb.js";
import { SchedulingService } from "./gen/manufacturing/scheduling/v1/scheduling_service_pb.js";

export * as scheduling from "./gen/manufacturing/scheduling/v1/scheduling_service_pb.js";
export * as quality from "./gen/manufacturing/quality/v1/quality_service_pb.js";
export * as maintenance from "./gen/manufacturing/maintenance/v1/maintenance_service_pb.js";
export { ConnectError, Code } from "@connectrpc/connect";

export interface SuiteOptions {
  /** Bearer token sent as `authorization`, or a function returning a fresh one. */
  token?: string | (() => string);
  /** Machine API key sent as `x-api-key`. */
  apiKey?: string;
  /** Deadline of each call in milliseconds (default 30 s). */
  timeoutMs?: number;
}

export interface Suite {
  scheduling: Client<typeof SchedulingService>;
  quality: Client<typeof QualityService>;
  maintenance: Client<typeof MaintenanceService>;
}

const DEFAULT_TIMEOUT_MS = 30_000;

/** What every transport to the gateway is given: where, credentials, a deadline. */
export function transportOptions(baseUrl: string, options: SuiteOptions) {
  return {
    baseUrl,
    interceptors: [credentials(options)],
    defaultTimeoutMs: options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
  };
}

/** Adds the caller's credentials to every call. */
function credentials(options: SuiteOptions): Interceptor {
  return (next) => async (request) => {
    if (options.token !== undefined) {
      const token = typeof options.token === "function" ? options.token() : options.token;
      request.header.set("authorization", `Bearer ${token}`);
    }
    if (options.apiKey !== undefined) {
      request.header.set("x-api-key", options.apiKey);
    }
    return next(request);
  };
}

/** A client of each service over one transport. */
export function suiteOver(transport: Transport): Suite {
  return {
    scheduling: createClient(SchedulingService, transport),
    quality: createClient(QualityService, transport),
    maintenance: createClient(MaintenanceService, transport),
  };
}
