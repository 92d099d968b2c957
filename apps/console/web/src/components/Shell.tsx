/**
 * The console's frame: a skip link, the header (product, operator, roles, Sign out), the side
 * navigation and the main region. Navigation items the role cannot use stay listed, marked
 * disabled, and say which permission (and roles) they need.
 */
import { useEffect, useId, useRef, useState, type ReactNode } from "react";
import { NAV_ITEMS, type NavItem } from "../lib/nav.js";
import { Link, useLocation } from "../lib/navigation.js";
import { pathFor, type Route } from "../lib/router.js";
import { loginUrl, safeRedirect } from "../lib/session.js";
import { useSession } from "../lib/session-context.js";
import { Button } from "./Button.js";

function NavEntry({ item, current }: { item: NavItem; current: boolean }) {
  const { lacks } = useSession();
  const reason = lacks(item.permission);
  const reasonId = useId();
  if (reason) {
    return (
      <li className="nav-item has-tip">
        <span className="nav-link nav-disabled" role="link" aria-disabled="true" tabIndex={0} aria-describedby={reasonId}>
          {item.label}
        </span>
        <span id={reasonId} role="tooltip" className="tip tip-side">
          {reason}
        </span>
      </li>
    );
  }
  return (
    <li className="nav-item">
      <Link to={pathFor(item.route)} className="nav-link" aria-current={current ? "page" : undefined}>
        {item.label}
      </Link>
    </li>
  );
}

function SignOut() {
  const { session } = useSession();
  const [busy, setBusy] = useState(false);
  const [failed, setFailed] = useState(false);
  const signOut = async () => {
    setBusy(true);
    setFailed(false);
    try {
      const res = await fetch("/auth/logout", {
        method: "POST",
        credentials: "same-origin",
        headers: { "x-csrf-token": session.csrfToken, accept: "application/json" },
      });
      if (res.status === 401) {
        window.location.assign(loginUrl(window.location));
        return;
      }
      if (!res.ok) throw new Error(String(res.status));
      const body: unknown = await res.json().catch(() => null);
      const redirect = typeof body === "object" && body !== null ? (body as { redirect?: unknown }).redirect : undefined;
      window.location.assign(safeRedirect(redirect));
    } catch {
      setBusy(false);
      setFailed(true);
    }
  };
  return (
    <>
      <Button variant="ghost" size="small" busy={busy} onClick={() => void signOut()}>
        Sign out
      </Button>
      {failed ? (
        <span role="alert" className="header-error">
          Sign-out failed; try again.
        </span>
      ) : null}
    </>
  );
}

/** The frame around every screen; `route` marks the current navigation item. */
export function Shell({ route, children }: { route: Route; children: ReactNode }) {
  const { session } = useSession();
  const { pathname } = useLocation();
  const main = useRef<HTMLElement>(null);
  const first = useRef(true);

  // After a navigation (not the first render), focus the new page's heading.
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    const h1 = main.current?.querySelector<HTMLElement>("h1");
    (h1 ?? main.current)?.focus();
    window.scrollTo(0, 0);
  }, [pathname]);

  const currentPath = route.name === "not-found" || route.name === "deployment" ? null : pathFor(route);
  return (
    <div className="app">
      <a className="skip-link" href="#main">
        Skip to content
      </a>
      <header className="app-header">
        <Link to={pathFor({ name: "licenses" })} className="brand">
          Licensing console
        </Link>
        <div className="user">
          <span className="user-name">{session.name}</span>
          <span className="user-roles">
            <span className="visually-hidden">Roles: </span>
            {session.roles.length > 0 ? session.roles.join(", ") : "no roles"}
          </span>
          <SignOut />
        </div>
      </header>
      <div className="layout">
        <nav className="side-nav" aria-label="Main">
          <ul>
            {NAV_ITEMS.map((item) => (
              <NavEntry key={item.label} item={item} current={pathFor(item.route) === currentPath} />
            ))}
          </ul>
        </nav>
        <main id="main" ref={main} tabIndex={-1} className="main">
          {children}
        </main>
      </div>
    </div>
  );
}
