// askclient/client.mjs: the official TypeScript SDK client as a person's
// MCP client, for vm-run's end-to-end test of ask rules. It declares the
// elicitation capability, answers vm-run's questions from a script, calls
// a tool once per answer, and prints one JSON line per call:
//
//   node client.mjs SDK_DIR TOOL ANSWER,ANSWER,... -- COMMAND ARGS...
//
// ANSWER is approve_once, approve_ttl or deny (accept with that choice),
// decline, none (no question is expected: the call must go through
// without one), again (approve_once, for the same call as approve_ttl's),
// ping (a ping through vm-run while the call waits, then approve_once),
// ignore (no answer: vm-run withdraws the question at its timeout, which
// aborts the handler), cancel (the client cancels the call while it
// waits), or sleep:MS (no call: wait MS milliseconds). approve_ttl, none
// and again call with the same arguments; the others each with their own.
// Each line: {"answer", "asked", "isError", "text", "question",
// "withdrawn", "pinged", "cancelled"}.
const argv = process.argv.slice(2);
const dash = argv.indexOf("--");
const [sdk, tool, answers] = argv.slice(0, dash);
const cmd = argv.slice(dash + 1);
if (dash < 3 || cmd.length === 0) {
  console.error("usage: client.mjs SDK_DIR TOOL ANSWERS -- COMMAND...");
  process.exit(2);
}
const { Client } = await import(`${sdk}/dist/esm/client/index.js`);
const { StdioClientTransport } = await import(`${sdk}/dist/esm/client/stdio.js`);
const { ElicitRequestSchema } = await import(`${sdk}/dist/esm/types.js`);

const transport = new StdioClientTransport({ command: cmd[0], args: cmd.slice(1), stderr: "inherit" });
const client = new Client({ name: "askclient-ts", version: "1" }, { capabilities: { elicitation: {} } });
let answer = "none", asked = 0, question = "", withdrawn = false, pinged = false, call = null;
client.setRequestHandler(ElicitRequestSchema, async (req, extra) => {
  asked++;
  question = req.params.message;
  switch (answer) {
    case "decline":
      return { action: "decline" };
    case "ping":
      await client.ping();
      pinged = true;
      return { action: "accept", content: { decision: "approve_once" } };
    case "ignore":
    case "cancel":
      if (answer === "cancel") setTimeout(() => call.abort("the user gave up"), 50);
      // Wait until vm-run withdraws the question (notifications/cancelled).
      await new Promise((resolve) => extra.signal.addEventListener("abort", resolve));
      withdrawn = true;
      return { action: "cancel" };
  }
  return { action: "accept", content: { decision: answer } };
});
await client.connect(transport);
let i = 0;
for (const a of answers.split(",")) {
  if (a.startsWith("sleep:")) {
    await new Promise((r) => setTimeout(r, Number(a.slice(6))));
    continue;
  }
  answer = a === "again" ? "approve_once" : a;
  asked = 0;
  question = "";
  withdrawn = pinged = false;
  call = new AbortController();
  i++;
  const args = { message: ["approve_ttl", "none", "again"].includes(a) ? "ttl" : `call ${i}` };
  let r, cancelled = false;
  try {
    r = await client.callTool({ name: tool, arguments: args }, undefined, { timeout: 60_000, signal: call.signal });
  } catch (e) {
    if (!call.signal.aborted) throw e;
    cancelled = true;
    r = { content: [], isError: true };
    // The question goes when vm-run hears of the cancellation.
    for (let n = 0; n < 200 && !withdrawn; n++) await new Promise((res) => setTimeout(res, 10));
  }
  const text = (r.content || []).map((c) => c.text || "").join("");
  console.log(JSON.stringify({ answer: a, asked, isError: !!r.isError, text, question, withdrawn, pinged, cancelled }));
}
await client.close();
