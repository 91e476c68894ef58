// Every rule of `vfio-dirty check`, by area, in the order the table shows them.

import type { CheckRule } from "../rule.ts";
import { deviceRules } from "./device.ts";
import { iommufdRules } from "./iommufd.ts";
import { type1Rules } from "./type1.ts";

export { deviceRules, iommufdRules, type1Rules };

export const ALL_RULES: readonly CheckRule[] = [...deviceRules, ...iommufdRules, ...type1Rules];
