import { createContextKey } from "@connectrpc/connect";
import type { Permission, ServiceName } from "@lcp/domain";

/** An operator authenticated by an admin bearer token (OIDC JWT); its roles grant permissions. */
export interface AdminPrincipal {
  readonly kind: "admin";
  /** The token's `sub`. */
  readonly subject: string;
  /** The role names the token carried (unknown ones grant nothing). */
  readonly roles: readonly string[];
  /** The union of the roles' permissions (`permissionsFor` in `@lcp/domain`). */
  readonly permissions: ReadonlySet<Permission>;
}

/** A control-plane service, by the platform-CA certificate whose URI SAN names it. */
export interface ServicePrincipal {
  readonly kind: "service";
  readonly name: ServiceName;
}

/** An appliance, by the appliance-CA certificate whose URI SAN names its deployment. */
export interface AppliancePrincipal {
  readonly kind: "appliance";
  readonly deploymentId: string;
  /** Hex serial of the client certificate, so revoked certificates can be refused. */
  readonly serialNumber: string;
}

/**
 * No usable credential. `reason` says why a credential that was presented did not become an
 * identity (untrusted certificate, expired token …), so a refusal can say so.
 */
export interface AnonymousPrincipal {
  readonly kind: "anonymous";
  readonly reason?: string;
}

/** Who is calling: the identity every authorisation decision is made on. */
export type Principal = AdminPrincipal | ServicePrincipal | AppliancePrincipal | AnonymousPrincipal;

/** The anonymous principal without a reason: nothing was presented. */
export const ANONYMOUS: AnonymousPrincipal = Object.freeze({ kind: "anonymous" });

/**
 * The caller's principal, set by the server interceptor before the handler runs:
 * `ctx.values.get(principalKey)`. Defaults to anonymous, so a handler reached without the
 * interceptor (e.g. an in-memory router transport) grants nothing.
 */
export const principalKey = createContextKey<Principal>(ANONYMOUS, { description: "lcp.principal" });

/** The call's request id (`x-request-id`, echoed in the response): `ctx.values.get(requestIdKey)`. */
export const requestIdKey = createContextKey<string>("", { description: "lcp.request-id" });

/** A short, log-safe identifier of a principal: subject, service name, deployment id, or "-". */
export function principalId(principal: Principal): string {
  switch (principal.kind) {
    case "admin":
      return principal.subject;
    case "service":
      return principal.name;
    case "appliance":
      return principal.deploymentId;
    case "anonymous":
      return "-";
  }
}
