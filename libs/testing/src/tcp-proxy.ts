/**
 * `@lcp/testing/tcp-proxy` — a TCP proxy a test can cut and restore, so an app loses a dependency
 * (PostgreSQL, signing-keys) without the shared server being stopped:
 *
 * ```ts
 * const proxy = await createTcpProxy({ target: { host: "127.0.0.1", port: 5432 } });
 * const url = proxy.rewrite(process.env.DATABASE_URL!); // same URL, the proxy's port
 * await proxy.cut();     // open connections dropped, new ones refused
 * await proxy.restore(); // accepting again on the same port
 * ```
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";

/** Options of {@link createTcpProxy}. */
export interface TcpProxyOptions {
  /** Where connections go; a function is asked once per new connection (a balancer), undefined refuses it. */
  readonly target: TcpTarget | (() => TcpTarget | undefined);
  /** Start cut (not listening yet) on a port reserved now. Default false. */
  readonly startCut?: boolean;
  /** The port to listen on; default a free one. */
  readonly port?: number;
}

/** A host and port a proxy forwards to. */
export interface TcpTarget {
  readonly host: string;
  readonly port: number;
}

/** A running proxy. */
export interface TcpProxy {
  /** The port it listens on (kept across cut and restore). */
  readonly port: number;
  /** `url` with its port replaced by the proxy's. */
  rewrite(url: string): string;
  /** Destroys every proxied connection and stops listening: the target looks down. */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  /** Cuts and forgets. */
  close(): Promise<void>;
}

/** Starts a proxy on a free port of 127.0.0.1 forwarding to `target`. */
export async function createTcpProxy(options: TcpProxyOptions): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  let server: Server | undefined;

  const listen = (port: number) =>
    new Promise<Server>((resolve, reject) => {
      const s = createServer((client) => {
        const target = typeof options.target === "function" ? options.target() : options.target;
        if (!target) {
          client.destroy();
          return;
        }
        const upstream = connect(target.port, target.host);
        for (const socket of [client, upstream]) {
          sockets.add(socket);
          socket.once("close", () => sockets.delete(socket));
          socket.on("error", () => undefined);
        }
        client.pipe(upstream);
        upstream.pipe(client);
        client.once("close", () => upstream.destroy());
        upstream.once("close", () => client.destroy());
      });
      s.once("error", reject);
      s.listen({ port, host: "127.0.0.1" }, () => resolve(s));
    });

  const stop = async () => {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  server = await listen(options.port ?? 0);
  const port = (server.address() as AddressInfo).port;
  if (options.startCut === true) await stop();

  return {
    port,
    rewrite(url) {
      const u = new URL(url);
      u.port = String(port);
      return u.toString();
    },
    cut: stop,
    async restore() {
      server ??= await listen(port);
    },
    close: stop,
  };
}
