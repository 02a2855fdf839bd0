// A small job shop the examples solve: two jobs on two machines, optimal makespan 7.
import type { MessageInitShape } from "@bufbuild/protobuf";

import { ProblemSchema } from "../gen/manufacturing/scheduling/v1/schedule_pb.js";

export const twoJobs: MessageInitShape<typeof ProblemSchema> = {
  machines: [{ id: "lathe" }, { id: "mill" }],
  jobs: [
    { id: "shaft", operations: [
      { eligibleMachines: [{ machineId: "lathe", duration: 3n }] },
      { eligibleMachines: [{ machineId: "mill", duration: 2n }] },
    ] },
    { id: "flange", operations: [
      { eligibleMachines: [{ machineId: "mill", duration: 4n }] },
      { eligibleMachines: [{ machineId: "lathe", duration: 3n }] },
    ] },
  ],
};
