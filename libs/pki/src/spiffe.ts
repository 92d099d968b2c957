/** The trust domain used when none is configured (development and tests). */
export const DEFAULT_TRUST_DOMAIN = "lcp.local";

/** What a SPIFFE id names: an internal service or an appliance (by deployment id). */
export type SpiffeKind = "service" | "appliance";

/** A parsed `spiffe://<trust-domain>/<kind>/<name>` identity. */
export interface SpiffeId {
  trustDomain: string;
  kind: SpiffeKind;
  name: string;
}

// Lowercase DNS-ish labels: SPIFFE trust domains are case-insensitive, so we only accept the
// canonical lowercase form and never have to compare two spellings of the same domain.
const TRUST_DOMAIN = /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;
const NAME = /^[A-Za-z0-9._-]{1,255}$/;
const MAX_ID_LENGTH = 2048;

/** True if `trustDomain` is a valid (lowercase, DNS-like) SPIFFE trust domain. */
export function isValidTrustDomain(trustDomain: string): boolean {
  return TRUST_DOMAIN.test(trustDomain);
}

/** True if `name` is a valid final path segment (service name or deployment id). */
export function isValidSpiffeName(name: string): boolean {
  // "." and ".." are dot-segments; a URL normaliser would collapse them into another identity.
  return NAME.test(name) && name !== "." && name !== "..";
}

function build(trustDomain: string, kind: SpiffeKind, name: string): string {
  if (!isValidTrustDomain(trustDomain)) throw new TypeError(`invalid SPIFFE trust domain: ${JSON.stringify(trustDomain)}`);
  if (!isValidSpiffeName(name)) throw new TypeError(`invalid SPIFFE ${kind} name: ${JSON.stringify(name)}`);
  return `spiffe://${trustDomain}/${kind}/${name}`;
}

/** The identity of an internal service: `spiffe://<trustDomain>/service/<service>`. Throws on invalid input. */
export function serviceSpiffeId(trustDomain: string, service: string): string {
  return build(trustDomain, "service", service);
}

/** The identity of an appliance: `spiffe://<trustDomain>/appliance/<deploymentId>`. Throws on invalid input. */
export function applianceSpiffeId(trustDomain: string, deploymentId: string): string {
  return build(trustDomain, "appliance", deploymentId);
}

/**
 * Parses a SPIFFE id strictly: scheme `spiffe`, a lowercase trust domain, exactly two path
 * segments (`service|appliance` and a name of `[A-Za-z0-9._-]`), nothing else (no port, user info,
 * query, fragment, percent-encoding or trailing slash). Returns null for anything else, so a
 * malformed URI SAN can never become an identity.
 */
export function parseSpiffeId(uri: string): SpiffeId | null {
  if (typeof uri !== "string" || uri.length > MAX_ID_LENGTH) return null;
  const match = /^spiffe:\/\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(uri);
  if (!match) return null;
  const [, trustDomain, kind, name] = match as unknown as [string, string, string, string];
  if (!isValidTrustDomain(trustDomain)) return null;
  if (kind !== "service" && kind !== "appliance") return null;
  if (!isValidSpiffeName(name)) return null;
  return { trustDomain, kind, name };
}
