import { EventEmitter } from "node:events";
import pg from "pg";
import type { Database, PersistenceLogger } from "./orm.js";

/** Cross-replica change signals: PostgreSQL LISTEN/NOTIFY, or in-process on SQLite (one process per file). */
export interface ChangeNotifier {
  /** Signals every subscriber (in every replica, this one included). Call after the change committed. Payload ≤ 7,900 bytes. */
  publish(payload: string): Promise<void>;
  /** Calls `fn` for each published payload; returns the unsubscribe function. */
  subscribe(fn: (payload: string) => void): () => void;
  /** Stops listening and releases the dedicated connection. */
  close(): Promise<void>;
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,40}$/;

/**
 * Creates a notifier on `channel` for one app. On PostgreSQL the channel is prefixed with the app's
 * schema, so apps (and test schemas) sharing a database never hear each other; a dedicated
 * connection LISTENs and reconnects after a drop. Notifications sent while it is reconnecting are
 * lost, so subscribers treat a signal as "look now", never as the only way to learn of a change.
 */
export async function createChangeNotifier(db: Database, channel: string, logger?: PersistenceLogger): Promise<ChangeNotifier> {
  if (!CHANNEL.test(channel)) throw new Error(`invalid channel name "${channel}" (lowercase letters, digits, _)`);
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  if (db.driver === "sqlite") {
    return {
      publish: async (payload) => void emitter.emit("change", payload),
      subscribe: (fn) => {
        emitter.on("change", fn);
        return () => emitter.off("change", fn);
      },
      close: async () => void emitter.removeAllListeners(),
    };
  }

  const name = `${db.schema}__${channel}`;
  const connectionString = clientUrlOf(db);
  let client: pg.Client | undefined;
  let closed = false;
  let retryMs = 100;

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString });
    c.on("notification", (msg) => {
      if (msg.channel === name) emitter.emit("change", msg.payload ?? "");
    });
    const reconnect = (err?: Error) => {
      if (closed || client !== c) return;
      client = undefined;
      logger?.warn({ channel: name, err: err?.message }, "change notifier: connection lost, reconnecting");
      setTimeout(() => void connect().catch(() => undefined), retryMs).unref();
    };
    c.on("error", reconnect);
    c.on("end", () => reconnect());
    client = c;
    try {
      await c.connect();
      await c.query(`listen "${name}"`);
      retryMs = 100;
    } catch (err) {
      retryMs = Math.min(retryMs * 2, 10_000);
      reconnect(err as Error);
      throw err;
    }
  };
  await connect();

  return {
    publish: async (payload) => {
      await db.em().execute("select pg_notify(?, ?)", [name, payload]);
    },
    subscribe: (fn) => {
      emitter.on("change", fn);
      return () => emitter.off("change", fn);
    },
    close: async () => {
      closed = true;
      emitter.removeAllListeners();
      const c = client;
      client = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}

function clientUrlOf(db: Database): string {
  const url = db.orm.config.get("clientUrl");
  if (!url) throw new Error("change notifier: the PostgreSQL database has no clientUrl");
  return url;
}
