// The official TypeScript SDK client against an MCP endpoint: initialize, list tools, call one, read a resource,
// get a prompt, and answer a sampling request; prints what it saw as one JSON object.
// Usage: node ts_client.mjs SDK_NODE_MODULES URL PREFIX
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const [modules, url, prefix] = process.argv.slice(2);
const sdk = (path) => import(pathToFileURL(join(modules, "@modelcontextprotocol/sdk/dist/esm", path)).href);
const { Client } = await sdk("client/index.js");
const { StreamableHTTPClientTransport } = await sdk("client/streamableHttp.js");
const { CreateMessageRequestSchema } = await sdk("types.js");

const client = new Client({ name: "ts-interop", version: "1.0.0" }, { capabilities: { sampling: {} } });
client.setRequestHandler(CreateMessageRequestSchema, async (request) => ({
  role: "assistant",
  model: "ts-model",
  content: { type: "text", text: `ts saw: ${request.params.messages[0].content.text}` },
}));
const transport = new StreamableHTTPClientTransport(new URL(url));
await client.connect(transport);
const out = { protocolVersion: transport.protocolVersion, server: client.getServerVersion() };
const tools = await client.listTools();
out.tools = tools.tools.map((tool) => tool.name).filter((name) => name.startsWith(prefix)).sort();
out.echo = await client.callTool({ name: `${prefix}echo`, arguments: { message: "from ts" } });
out.sampled = await client.callTool({ name: `${prefix}trigger-sampling-request`, arguments: { prompt: "hi" } });
const resources = await client.listResources();
const scheme = prefix ? `${prefix.replace(/__$/, "")}+` : ""; // the gateway's URIs: "everyhttp+demo://..."
const uri = resources.resources
  .map((r) => r.uri)
  .filter((u) => u.startsWith(`${scheme}demo://resource/static/`))
  .sort()[0];
out.resource = await client.readResource({ uri });
out.prompt = await client.getPrompt({ name: `${prefix}args-prompt`, arguments: { city: "Paris" } });
await transport.terminateSession();
await client.close();
console.log(JSON.stringify(out));
