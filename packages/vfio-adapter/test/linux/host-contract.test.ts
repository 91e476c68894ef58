import { createLinuxHost } from "../../src/linux/index.ts";
import { testHost } from "../host-contract.ts";

testHost("linux", () => createLinuxHost());
