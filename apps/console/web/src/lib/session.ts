/**
 * The signed-in operator as the console server reports it (`GET /auth/session`), and what the
 * screens may offer them. The services decide every call; the console only hides or disables
 * what a role may not do, and says which permission (and which roles) it would need.
 */
import { ROLE_PERMISSIONS, type Permission } from "@lcp/domain";

/** The signed-in operator: `GET /auth/session`'s answer. */
export interface Session {
  readonly subject: string;
  readonly name: string;
  readonly roles: readonly string[];
  readonly permissions: readonly string[];
  /** Sent as `x-csrf-token` on every RPC and on sign-out. */
  readonly csrfToken: string;
  /** When the session ends (ISO 8601), as the server said. */
  readonly expiresAt: string;
}

/** What asking for the session gave: a session, a signed-out visitor, or a failure to explain. */
export type SessionResult =
  | { readonly kind: "ok"; readonly session: Session }
  | { readonly kind: "signed-out" }
  | { readonly kind: "error"; readonly message: string };

const MAX_TEXT = 512;
const MAX_ITEMS = 64;

function boundedString(value: unknown, max = MAX_TEXT): string | null {
  return typeof value === "string" && value.length <= max ? value : null;
}

function stringList(value: unknown): string[] | null {
  if (!Array.isArray(value) || value.length > MAX_ITEMS) return null;
  const out: string[] = [];
  for (const item of value) {
    const s = boundedString(item, 128);
    if (s === null) return null;
    out.push(s);
  }
  return out;
}

/**
 * Checks the shape of `GET /auth/session`'s JSON, bounding every string; null when it is not a
 * session (the app then says so rather than rendering half a user).
 */
export function parseSession(json: unknown): Session | null {
  if (typeof json !== "object" || json === null) return null;
  const o = json as Record<string, unknown>;
  const subject = boundedString(o.subject);
  const name = boundedString(o.name) ?? subject;
  const roles = stringList(o.roles);
  const permissions = stringList(o.permissions);
  const csrfToken = boundedString(o.csrfToken, 1024);
  const expiresAt = boundedString(o.expiresAt, 64) ?? "";
  if (subject === null || subject === "" || name === null || roles === null || permissions === null || !csrfToken) return null;
  return { subject, name: name === "" ? subject : name, roles, permissions, csrfToken, expiresAt };
}

/** Asks the console server who is signed in. 401 means nobody: the caller sends them to sign in. */
export async function fetchSession(fetchImpl: typeof fetch = fetch): Promise<SessionResult> {
  let res: Response;
  try {
    res = await fetchImpl("/auth/session", { headers: { accept: "application/json" }, credentials: "same-origin" });
  } catch {
    return { kind: "error", message: "The console server could not be reached. Check your connection and reload the page." };
  }
  if (res.status === 401) return { kind: "signed-out" };
  if (!res.ok) return { kind: "error", message: `The console server could not tell who you are (HTTP ${res.status}). Reload the page to try again.` };
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    json = null;
  }
  const session = parseSession(json);
  return session ? { kind: "ok", session } : { kind: "error", message: "The console server answered with something that is not a session. Reload the page to try again." };
}

/** Where to send a visitor to sign in, so they come back to the page they were on. */
export function loginUrl(location: { readonly pathname: string; readonly search: string }): string {
  return `/auth/login?return=${encodeURIComponent(location.pathname + location.search)}`;
}

/**
 * The one place a sign-out redirect is judged: a same-origin path, or an http(s) URL (the
 * identity provider's end-session page). Anything else (`javascript:`, `//evil`) goes to "/".
 */
export function safeRedirect(value: unknown): string {
  if (typeof value !== "string" || value.length > 4096) return "/";
  if (value.startsWith("/") && !value.startsWith("//") && !value.startsWith("/\\")) return value;
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:" ? url.href : "/";
  } catch {
    return "/";
  }
}

/** The roles whose permissions include `permission`, from the one roles table (@lcp/domain). */
export function rolesGranting(permission: Permission): string[] {
  return Object.entries(ROLE_PERMISSIONS)
    .filter(([, perms]) => (perms as readonly string[]).includes(permission))
    .map(([role]) => role);
}

/** Why an action is unavailable to a role: `needs signing.manage (super_admin)`. */
export function permissionReason(permission: Permission): string {
  const roles = rolesGranting(permission);
  return roles.length > 0 ? `needs ${permission} (${roles.join(", ")})` : `needs ${permission}`;
}

/** Whether the session holds a permission (as the server listed them, never derived here). */
export function hasPermission(session: Session, permission: Permission): boolean {
  return session.permissions.includes(permission);
}
