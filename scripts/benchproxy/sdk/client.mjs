// sdk/client.mjs: the official TypeScript SDK client, as MCP clients built
// on it run, for benchproxy's end-to-end figures. It starts one server
// command over stdio (the server itself, or vm-run in front of it), does
// one kind of traffic, and prints one JSON line of what it measured:
//
//   node client.mjs SDK_DIR pipelined N K -- COMMAND ARGS...
//       N echo calls, K in flight at a time          {"calls":N,"seconds":S}
//   node client.mjs SDK_DIR flood COUNT SIZE -- COMMAND ARGS...
//       the fake server's flood tool, every notification handled
//                                                    {"notifications":COUNT,"seconds":S}
//   node client.mjs SDK_DIR big SIZE -- COMMAND ARGS...
//       one tool result of SIZE bytes                {"bytes":SIZE,"seconds":S}
//
// Times cover the traffic only, not the start of the processes.
const argv = process.argv.slice(2);
const dash = argv.indexOf("--");
const [sdk, mode, a1, a2] = argv.slice(0, dash);
const cmd = argv.slice(dash + 1);
if (dash < 2 || cmd.length === 0) {
  console.error("usage: client.mjs SDK_DIR pipelined|flood|big ARGS -- COMMAND...");
  process.exit(2);
}
const { Client } = await import(`${sdk}/dist/esm/client/index.js`);
const { StdioClientTransport } = await import(`${sdk}/dist/esm/client/stdio.js`);
const { LoggingMessageNotificationSchema } = await import(`${sdk}/dist/esm/types.js`);

const transport = new StdioClientTransport({ command: cmd[0], args: cmd.slice(1), stderr: "inherit" });
const client = new Client({ name: "benchproxy-sdk", version: "1" });
await client.connect(transport);
const opts = { timeout: 300_000 };
let out;
if (mode === "pipelined") {
  const n = Number(a1), k = Number(a2);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      const r = await client.callTool({ name: "echo", arguments: { message: "bench" } }, undefined, opts);
      if (r.isError || r.content[0].text !== "Echo: bench") throw new Error("echo answered " + JSON.stringify(r));
    }
  };
  await Promise.all(Array.from({ length: 50 }, () => client.callTool({ name: "echo", arguments: { message: "bench" } }, undefined, opts)));
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: k }, worker));
  out = { calls: n, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
} else if (mode === "flood") {
  const count = Number(a1), size = Number(a2);
  let got = 0;
  client.setNotificationHandler(LoggingMessageNotificationSchema, () => { got++; });
  const t0 = process.hrtime.bigint();
  await client.callTool({ name: "flood", arguments: { count, size } }, undefined, opts);
  // Notifications sent before the answer may be handled after it.
  while (got < count) await new Promise((r) => setImmediate(r));
  out = { notifications: got, seconds: Number(process.hrtime.bigint() - t0) / 1e9 };
} else if (mode === "big") {
  const size = Number(a1);
  const t0 = process.hrtime.bigint();
  const r = await client.callTool({ name: "big", arguments: { size } }, undefined, opts);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (r.content[0].text.length !== size) throw new Error(`big ${size} answered ${r.content[0].text.length} bytes`);
  out = { bytes: size, seconds };
} else {
  console.error("unknown mode " + mode);
  process.exit(2);
}
console.log(JSON.stringify(out));
await client.close();
