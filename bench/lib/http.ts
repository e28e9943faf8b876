import http from "node:http";

// A lean client for the benches: node:http with kept-alive sockets costs the bench process less
// CPU per request than fetch, and on two cores the client's CPU is taken from the service measured
// (in production the clients are other machines).
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024 });

/** Closes the kept-alive sockets, so the bench process can exit. */
export const closeHttpClients = () => agent.destroy();

/** POSTs a JSON body to the API's /graphql with a bearer token; resolves with the status and body text. */
export function postGraphql(port: number, token: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: "127.0.0.1",
        port,
        path: "/graphql",
        method: "POST",
        agent,
        headers: {
          "content-type": "application/json",
          accept: "application/json",
          "content-length": Buffer.byteLength(body),
          authorization: `Bearer ${token}`,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}
