/**
 * A load balancer without sticky sessions, reduced to what the replica tests need: TLS passes
 * through (the browser sees one origin and one certificate), and each new connection goes to the
 * replica the test names, so it decides which replica answers which request (the test browser
 * opens one connection per request).
 */
import { createTcpProxy } from "@lcp/testing/tcp-proxy";

/** A running balancer. */
export interface TestBalancer {
  /** `https://localhost:<port>`: the console's public URL for every replica behind it. */
  readonly url: string;
  /** Puts a replica (its port on 127.0.0.1) behind the balancer; the first added gets the connections until `to`. */
  add(replica: string, port: number): void;
  /** Sends new connections to this replica from now on. */
  to(replica: string): void;
  /** The next connections, one each, go to these replicas; then back to the one named by `to`. */
  next(...replicas: string[]): void;
  /** Connections each replica received so far. */
  readonly served: Record<string, number>;
  close(): Promise<void>;
}

/** Starts a balancer with no replicas yet (their public URL, the balancer's, is needed to start them). */
export async function startTestBalancer(): Promise<TestBalancer> {
  const replicas: Record<string, number> = {};
  let current: string | undefined;
  const queue: string[] = [];
  const served: Record<string, number> = {};
  const proxy = await createTcpProxy({
    target: () => {
      const name = queue.shift() ?? current;
      if (name === undefined) return undefined;
      served[name]!++;
      return { host: "127.0.0.1", port: replicas[name]! };
    },
  });
  return {
    url: `https://localhost:${proxy.port}`,
    add(replica, port) {
      replicas[replica] = port;
      served[replica] = 0;
      current ??= replica;
    },
    to(replica) {
      if (!(replica in replicas)) throw new Error(`no replica ${replica}`);
      current = replica;
    },
    next: (...names) => void queue.push(...names),
    served,
    close: () => proxy.close(),
  };
}
