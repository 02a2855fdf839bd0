// Clients of the three services over the gateway (native gRPC on HTTP/2 through Envoy),
// with the suite's defaults: a deadline on every call and credentials on every call.
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

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
  /** Deadline of each unary call in milliseconds (default 30 s). */
  timeoutMs?: number;
}

export interface Suite {
  scheduling: Client<typeof SchedulingService>;
  quality: Client<typeof QualityService>;
  maintenance: Client<typeof MaintenanceService>;
}

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

/** Clients of every service behind the gateway at `baseUrl` (e.g. http://localhost:8080). */
export function connectSuite(baseUrl: string, options: SuiteOptions = {}): Suite {
  const transport = createGrpcTransport({
    baseUrl,
    interceptors: [credentials(options)],
    defaultTimeoutMs: options.timeoutMs ?? 30_000,
  });
  return {
    scheduling: createClient(SchedulingService, transport),
    quality: createClient(QualityService, transport),
    maintenance: createClient(MaintenanceService, transport),
  };
}
