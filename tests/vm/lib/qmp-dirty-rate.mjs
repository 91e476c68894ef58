// Host side of the guest-dirty-rate scenario: QEMU's own measurement of the guest's dirty rate,
// taken while the guest works. boot.sh starts this beside QEMU with the QMP socket it gave QEMU.
// It waits for the guest to ask (the guest writes RESULTS/dirty-rate.request, {"calcTimeS": N}),
// runs `calc-dirty-rate`, polls `query-dirty-rate` until QEMU says "measured", and writes QEMU's
// replies, exactly as QMP sent them, into RESULTS: query-dirty-rate.json (the measured one) and
// query-dirty-rate-measuring.json (one taken before it finished, for the refusal test).
// It exits when QEMU closes the socket. Log: RESULTS/qmp-dirty-rate.log.
//
// Usage: node qmp-dirty-rate.mjs QMP_SOCKET RESULTS
import { appendFileSync, existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";

const [socketPath, results] = process.argv.slice(2);
const log = (line) =>
  appendFileSync(join(results, "qmp-dirty-rate.log"), `${new Date().toISOString()} ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Connects once QEMU has created the socket (it does so before the guest boots). */
async function open() {
  for (let i = 0; i < 300; i++) {
    if (existsSync(socketPath)) {
      const s = await new Promise((resolve) => {
        const c = connect(socketPath);
        c.once("connect", () => resolve(c));
        c.once("error", () => resolve(undefined));
      });
      if (s) return s;
    }
    await sleep(100);
  }
  return undefined;
}

// Whatever goes wrong here must reach the log: the guest's test only sees that no reply came.
process.on("uncaughtException", (err) => {
  log(`helper failed: ${err.stack ?? err}`);
  process.exit(1);
});
process.on("unhandledRejection", (err) => {
  log(`helper failed: ${err?.stack ?? err}`);
  process.exit(1);
});

const sock = await open();
if (!sock) {
  log(`no QMP socket at ${socketPath}`);
  process.exit(0);
}
let closed = false;
sock.on("close", () => {
  closed = true;
});
sock.on("error", () => {});

// QMP is one JSON object per line; replies to commands come in order, events in between.
let buffer = "";
const waiting = [];
sock.setEncoding("utf8");
sock.on("data", (chunk) => {
  buffer += chunk;
  for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
    const line = buffer.slice(0, nl).trim();
    buffer = buffer.slice(nl + 1);
    if (!line) continue;
    const msg = JSON.parse(line);
    if ("QMP" in msg || "event" in msg) continue;
    waiting.shift()?.({ line, msg });
  }
});
const execute = (command, args) =>
  new Promise((resolve) => {
    waiting.push(resolve);
    sock.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
  });
const save = (name, line) => {
  writeFileSync(join(results, `${name}.tmp`), `${line}\n`);
  renameSync(join(results, `${name}.tmp`), join(results, name));
};

await execute("qmp_capabilities");
log("connected");
const request = join(results, "dirty-rate.request");
while (!closed && !existsSync(request)) await sleep(200);
/**
 * The request as a whole document. The guest writes it through 9p by rename, but an older guest
 * (or any writer) may be seen between create and write: on a loaded host an empty file was read
 * and the helper died on JSON.parse, silently (CI under `yes`). Retry until it parses.
 */
async function readRequest() {
  for (let i = 0; i < 100; i++) {
    try {
      return JSON.parse(readFileSync(request, "utf8"));
    } catch (err) {
      if (i === 0) log(`request not complete yet (${err.message}); reading again`);
      await sleep(100);
    }
  }
  log("request never became a JSON document; using calcTimeS 1");
  return {};
}
if (!closed) {
  const { calcTimeS = 1 } = await readRequest();
  const calc = await execute("calc-dirty-rate", { "calc-time": calcTimeS });
  log(`calc-dirty-rate ${calcTimeS} s: ${calc.line}`);
  for (let i = 0; i < 240 && !closed; i++) {
    const q = await execute("query-dirty-rate");
    log(`query-dirty-rate: ${q.line}`);
    const status = q.msg.return?.status;
    if (status === "measured") {
      save("query-dirty-rate.json", q.line);
      break;
    }
    if (status === "measuring" && !existsSync(join(results, "query-dirty-rate-measuring.json")))
      save("query-dirty-rate-measuring.json", q.line);
    await sleep(250);
  }
}
sock.end();
