/**
 * The console's routes (docs/design.md §13), matched over the History API: no router library,
 * ten paths do not need one. Pure matching lives here; the React side is in navigation.tsx.
 */

/** Where every console page lives. */
export const BASE_PATH = "/licensing";

/** A matched console page. */
export type Route =
  | { readonly name: "licenses" }
  | { readonly name: "license-new" }
  | { readonly name: "offline" }
  | { readonly name: "deployment"; readonly id: string }
  | { readonly name: "signing" }
  | { readonly name: "heartbeats" }
  | { readonly name: "settings" }
  | { readonly name: "sweeps" }
  | { readonly name: "audit" }
  | { readonly name: "not-found"; readonly path: string };

const STATIC: Readonly<Record<string, Route>> = {
  "": { name: "licenses" },
  "license-new": { name: "license-new" },
  offline: { name: "offline" },
  signing: { name: "signing" },
  heartbeats: { name: "heartbeats" },
  settings: { name: "settings" },
  sweeps: { name: "sweeps" },
  audit: { name: "audit" },
};

/** The page a path names; `not-found` for anything else. A trailing slash is ignored. */
export function matchRoute(pathname: string): Route {
  const path = pathname.length > 1 && pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
  if (path !== BASE_PATH && !path.startsWith(`${BASE_PATH}/`)) return { name: "not-found", path: pathname };
  const rest = path.slice(BASE_PATH.length + 1);
  const fixed = STATIC[rest];
  if (fixed) return fixed;
  const m = /^deployments\/([^/]+)$/.exec(rest);
  if (m) {
    let id: string;
    try {
      id = decodeURIComponent(m[1]!);
    } catch {
      return { name: "not-found", path: pathname };
    }
    if (id !== "" && id.length <= 128) return { name: "deployment", id };
  }
  return { name: "not-found", path: pathname };
}

/** The path of a page. */
export function pathFor(route: Exclude<Route, { name: "not-found" }>): string {
  switch (route.name) {
    case "licenses":
      return BASE_PATH;
    case "deployment":
      return `${BASE_PATH}/deployments/${encodeURIComponent(route.id)}`;
    default:
      return `${BASE_PATH}/${route.name}`;
  }
}

/** A deployment page's path. */
export function deploymentPath(id: string): string {
  return pathFor({ name: "deployment", id });
}
