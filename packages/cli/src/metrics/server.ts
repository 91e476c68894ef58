// The /metrics endpoint of `track --metrics-listen`: a plain node:http server answering GET
// /metrics with the current exposition, in OpenMetrics when the scraper asks for it (Prometheus
// does) and in the Prometheus text format otherwise. Started before tracking, closed on every
// exit path; open connections (a scraper's keep-alive) are closed with it.

import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { UsageError } from "../errors.ts";
import type { ListenAddress } from "../parse/listen.ts";
import { CONTENT_TYPES, type ExpositionFormat, negotiate } from "./exposition.ts";

export interface MetricsServer {
  /** "http://127.0.0.1:9464/metrics": what to put in a scrape config. */
  readonly url: string;
  close(): Promise<void>;
}

/** Listens on `addr`; a taken or unavailable address is a usage error, raised before any tracking. */
export async function serveMetrics(
  addr: ListenAddress,
  render: (format: ExpositionFormat) => string,
  flag = "--metrics-listen",
): Promise<MetricsServer> {
  const server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { allow: "GET, HEAD" }).end();
      return;
    }
    if (path !== "/metrics") {
      res.writeHead(404, { "content-type": "text/plain; charset=utf-8" }).end("vfio-dirty serves /metrics\n");
      return;
    }
    const format = negotiate(req.headers.accept);
    const body = render(format);
    res.writeHead(200, { "content-type": CONTENT_TYPES[format], "content-length": Buffer.byteLength(body) });
    res.end(req.method === "HEAD" ? undefined : body);
  });
  await listen(server, addr, flag);
  const a = server.address() as AddressInfo;
  const host = a.family === "IPv6" ? `[${a.address}]` : a.address;
  return {
    url: `http://${host}:${a.port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

// --- Internal helpers ---

function listen(server: Server, addr: ListenAddress, flag: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", (err: NodeJS.ErrnoException) => {
      const where = `${flag} ${addr.host ?? ""}:${addr.port}`;
      const why =
        err.code === "EADDRINUSE"
          ? "the port is in use; pick another port (or 0 for a free one)"
          : err.code === "EACCES"
            ? "permission denied; use a port above 1023"
            : err.code === "EADDRNOTAVAIL"
              ? "no interface of this machine has that address"
              : `cannot listen (${err.code ?? err.message})`;
      reject(new UsageError(`${where}: ${why}`, { cause: err }));
    });
    server.listen({ port: addr.port, ...(addr.host !== undefined ? { host: addr.host } : {}) }, () =>
      resolve(),
    );
  });
}
