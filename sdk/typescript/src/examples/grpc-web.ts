// Calls the suite as a web page does, with gRPC-Web through the gateway (Node 20 has
// fetch): a unary call, a server stream, and a refused call's status.
// Usage: node dist/examples/grpc-web.js [http://localhost:8080]
import { Code, ConnectError } from "../suite.js";
import { connectSuiteWeb } from "../web.js";
import { twoJobs } from "./problem.js";

const suite = connectSuiteWeb(process.argv[2] ?? "http://localhost:8080");

const info = await suite.quality.getServiceInfo({});

// SolveStream sends each improving schedule, then the stored one (final).
const makespans: string[] = [];
let stored = "";
for await (const reply of suite.scheduling.solveStream({ problem: twoJobs })) {
  makespans.push(String(reply.schedule?.makespan));
  if (reply.final) {
    stored = reply.schedule?.id ?? "";
  }
}

// A problem without machines is refused; the status travels in gRPC-Web trailers.
let refused = "";
try {
  await suite.scheduling.solve({ problem: {} });
} catch (error) {
  const refusal = ConnectError.from(error);
  refused = `${Code[refusal.code]}: ${refusal.rawMessage}`;
}

console.log(JSON.stringify({ quality: info.info?.version ?? "?", makespans, stored, refused }));
