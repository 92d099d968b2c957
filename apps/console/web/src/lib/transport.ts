/**
 * The one transport every screen's calls go through: the Connect protocol (binary) to the
 * console server's `/api`, which forwards each call to its service with the admin's token.
 */
import { Code, ConnectError, type Interceptor, type Transport } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

/** What the console transport needs from the app. */
export interface ConsoleTransportOptions {
  /** The session's CSRF token, read on every call (sent as `x-csrf-token`). */
  readonly csrfToken: () => string;
  /** Called when any call answers Unauthenticated: the session ended, sign in again. */
  readonly onUnauthenticated: () => void;
  /** Defaults to `/api`. */
  readonly baseUrl?: string;
  readonly fetch?: typeof globalThis.fetch;
}

/** The CSRF header and the "signed out" reaction, as an interceptor (exported for tests). */
export function createSessionInterceptor(options: Pick<ConsoleTransportOptions, "csrfToken" | "onUnauthenticated">): Interceptor {
  return (next) => async (req) => {
    req.header.set("x-csrf-token", options.csrfToken());
    try {
      return await next(req);
    } catch (err) {
      if (ConnectError.from(err).code === Code.Unauthenticated) options.onUnauthenticated();
      throw err;
    }
  };
}

/** Creates the console's Connect transport (`useBinaryFormat`, `/api`, the session interceptor). */
export function createConsoleTransport(options: ConsoleTransportOptions): Transport {
  return createConnectTransport({
    baseUrl: options.baseUrl ?? "/api",
    useBinaryFormat: true,
    interceptors: [createSessionInterceptor(options)],
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
}
