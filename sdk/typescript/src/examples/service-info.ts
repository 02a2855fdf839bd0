// Prints the version of every service behind the gateway, then solves a small problem.
// Usage: node dist/examples/service-info.js [http://localhost:8080]
import { connectSuite } from "../index.js";
import { twoJobs } from "./problem.js";

const suite = connectSuite(process.argv[2] ?? "http://localhost:8080");

const services = {
  scheduling: await suite.scheduling.getServiceInfo({}),
  quality: await suite.quality.getServiceInfo({}),
  maintenance: await suite.maintenance.getServiceInfo({}),
};
const versions = Object.fromEntries(
  Object.entries(services).map(([name, reply]) => [name, reply.info?.version ?? "?"]),
);

const solved = await suite.scheduling.solve({ problem: twoJobs });

console.log(JSON.stringify({ versions, makespan: String(solved.schedule?.makespan) }));
