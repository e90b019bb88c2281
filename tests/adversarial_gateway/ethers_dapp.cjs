// An unchanged ethers v6 dApp reading through the gateway with a quorum (DESIGN §4).
// ETHERS_DIR: the project-local install (tools/ethers); URL: the gateway's RPC URL;
// QUORUM: a Relay-Quorum header value, or "" to rely on the URL (?quorum=N) or the key.
// Prints one JSON line: what ethers read, and the Relay-* headers of every answer.
"use strict";
const path = require("node:path");
const { FetchRequest, JsonRpcProvider } = require(path.join(process.env.ETHERS_DIR, "node_modules", "ethers"));

const timer = setTimeout(() => {
  console.error("ethers did not finish in 90 s");
  process.exit(3);
}, 90_000);

async function main() {
  const req = new FetchRequest(process.env.URL);
  if (process.env.QUORUM) req.setHeader("Relay-Quorum", process.env.QUORUM);
  const seen = [];
  req.processFunc = async (_request, response) => {
    seen.push({
      supplier: response.headers["relay-supplier"] || null,
      receipt: response.headers["relay-receipt"] || null,
      status: response.headers["relay-backend-status"] || null,
    });
    return response;
  };
  const provider = new JsonRpcProvider(req);
  const network = await provider.getNetwork();
  const blockNumber = await provider.getBlockNumber();
  const balance = await provider.getBalance(process.env.ACCOUNT, 0);
  const block0 = await provider.getBlock(0);
  provider.destroy();
  console.log(JSON.stringify({
    chainId: network.chainId.toString(),
    blockNumber,
    balance: balance.toString(),
    block0: block0.number,
    seen,
  }));
}

main().then(
  () => { clearTimeout(timer); },
  (err) => { console.error(String(err && err.stack || err)); process.exit(2); },
);
