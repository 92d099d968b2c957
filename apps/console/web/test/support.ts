/**
 * A real Connect server for the console's browser-side code: connect-node on a port-0 HTTP
 * listener under `/api`, answering with whatever the test's handlers return or throw. The
 * browser transport (connect-web over fetch) talks to it exactly as it talks to the console
 * server in a browser.
 */
import { createServer, type IncomingHttpHeaders, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

/** A running test API: its base URL, the headers of every call it received, and close(). */
export interface TestApi {
  readonly baseUrl: string;
  readonly received: IncomingHttpHeaders[];
  close(): Promise<void>;
}

/** Starts a Connect server on port 0 serving `routes` under `/api`. */
export async function startTestApi(routes: (router: ConnectRouter) => void): Promise<TestApi> {
  const adapter = connectNodeAdapter({ routes, requestPathPrefix: "/api" });
  const received: IncomingHttpHeaders[] = [];
  const server: Server = createServer((req, res) => {
    received.push(req.headers);
    adapter(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}/api`,
    received,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((err) => (err ? reject(err) : resolve()));
      }),
  };
}

/** What a call threw (it must throw: a success fails the test). */
export async function failure(call: Promise<unknown>): Promise<unknown> {
  try {
    await call;
  } catch (err) {
    return err;
  }
  throw new Error("the call succeeded");
}
