// Clients of the three services over the gateway for web pages: gRPC-Web on fetch, which
// Envoy translates to gRPC. Unary calls and server streams only (a browser cannot stream
// a request body); the page's origin must be allowed by the gateway's CORS policy.
// Nothing here needs Node, so a bundler can ship it to a browser; Node 18+ runs it too.
import { createGrpcWebTransport } from "@connectrpc/connect-web";

import { suiteOver, transportOptions, type Suite, type SuiteOptions } from "./suite.js";

export * from "./suite.js";

/** Clients of every service behind the gateway at `baseUrl` (e.g. https://gateway.example.com). */
export function connectSuiteWeb(baseUrl: string, options: SuiteOptions = {}): Suite {
  return suiteOver(createGrpcWebTransport(transportOptions(baseUrl, options)));
}
