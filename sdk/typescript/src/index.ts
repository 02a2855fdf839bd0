// Clients of the three services over the gateway for Node services: native gRPC on
// HTTP/2 through Envoy. Browsers use "@manufacturing-ai/sdk/web" (gRPC-Web) instead.
import { createGrpcTransport } from "@connectrpc/connect-node";

import { suiteOver, transportOptions, type Suite, type SuiteOptions } from "./suite.js";

export * from "./suite.js";

/** Clients of every service behind the gateway at `baseUrl` (e.g. http://localhost:8080). */
export function connectSuite(baseUrl: string, options: SuiteOptions = {}): Suite {
  return suiteOver(createGrpcTransport(transportOptions(baseUrl, options)));
}
