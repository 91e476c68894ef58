// `--metrics-listen ADDR`: where to serve /metrics, as exporters write it: "127.0.0.1:9464",
// "[::1]:9464", "localhost:9464", or ":9464" for every interface. Port 0 picks a free one (the
// address in use is printed). Hosts are IP literals or localhost: nothing is looked up.

import { isIPv4, isIPv6 } from "node:net";
import { UsageError } from "../errors.ts";

export interface ListenAddress {
  /** undefined: every interface. */
  host: string | undefined;
  port: number;
}

export function parseListenAddress(text: string, what: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+|localhost)?):(\d{1,5})$/.exec(text.trim());
  const host = m?.[1] ?? m?.[2];
  const port = m ? Number(m[3]) : Number.NaN;
  const hostOk = host === undefined || host === "localhost" || (m?.[1] ? isIPv6(host) : isIPv4(host));
  if (!m || !hostOk || port > 65535)
    throw new UsageError(
      `${what} '${text}': not HOST:PORT; use e.g. 127.0.0.1:9464, [::1]:9464 or :9464 (every interface)`,
    );
  return { host, port };
}
