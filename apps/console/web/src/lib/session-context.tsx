/** The signed-in operator for every component, and the permission checks screens use. */
import type { Permission } from "@lcp/domain";
import { createContext, useContext, useMemo, type ReactNode } from "react";
import { hasPermission, permissionReason, type Session } from "./session.js";

/** What components know of the operator. */
export interface SessionInfo {
  readonly session: Session;
  /** Whether the operator holds a permission. */
  can(permission: Permission): boolean;
  /** Null when the operator holds the permission; otherwise why not ("needs license.revoke (support, super_admin)"). */
  lacks(permission: Permission): string | null;
}

const SessionContext = createContext<SessionInfo | null>(null);

/** Provides the session to the app below it. */
export function SessionProvider({ session, children }: { session: Session; children: ReactNode }) {
  const value = useMemo<SessionInfo>(
    () => ({
      session,
      can: (p) => hasPermission(session, p),
      lacks: (p) => (hasPermission(session, p) ? null : permissionReason(p)),
    }),
    [session],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

/** The signed-in operator; only inside {@link SessionProvider}. */
export function useSession(): SessionInfo {
  const value = useContext(SessionContext);
  if (!value) throw new Error("useSession outside SessionProvider");
  return value;
}
