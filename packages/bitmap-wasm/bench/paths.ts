// Where the benchmark's files are, whether it runs as bench/*.ts (typecheck, editors) or as the
// compiled copy in node_modules/.cache/bench/ (npm run bench). The compiled copy lives under
// node_modules so that linters and `files` never see generated JS.
import { dirname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const cacheMarker = `${sep}node_modules${sep}.cache${sep}`;

/** packages/bitmap-wasm */
export const packageRoot = here.includes(cacheMarker)
  ? here.slice(0, here.indexOf(cacheMarker))
  : dirname(here);
/** packages/bitmap-wasm/bench (sources, native/, results.json) */
export const benchDir = join(packageRoot, "bench");
