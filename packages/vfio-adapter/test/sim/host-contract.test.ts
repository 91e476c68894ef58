import { createSimHost } from "../../src/sim/index.ts";
import { testHost } from "../host-contract.ts";

testHost("sim:mlx5-vf", () => createSimHost("mlx5-vf"));
testHost("sim:legacy-type1", () => createSimHost("legacy-type1"));
