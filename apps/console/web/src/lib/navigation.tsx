/**
 * The React side of the console's router: the current location as a subscription to the
 * History API, `navigate`, a `Link` that navigates without a reload, and search parameters as
 * state (filters live in the URL, so a filtered list can be bookmarked and Back works).
 */
import { useCallback, useMemo, useSyncExternalStore, type AnchorHTMLAttributes, type MouseEvent, type ReactNode } from "react";

const EVENT = "lcp:navigate";

function subscribe(onChange: () => void): () => void {
  window.addEventListener("popstate", onChange);
  window.addEventListener(EVENT, onChange);
  return () => {
    window.removeEventListener("popstate", onChange);
    window.removeEventListener(EVENT, onChange);
  };
}

const snapshot = () => window.location.pathname + window.location.search;

/** Goes to a same-origin path (`/licensing/...`) without reloading the page. */
export function navigate(to: string, options: { replace?: boolean } = {}): void {
  if (to === snapshot()) return;
  if (options.replace) window.history.replaceState(null, "", to);
  else window.history.pushState(null, "", to);
  window.dispatchEvent(new Event(EVENT));
}

/** The current path and search string; re-renders on every navigation. */
export function useLocation(): { pathname: string; search: string } {
  const current = useSyncExternalStore(subscribe, snapshot, snapshot);
  return useMemo(() => {
    const q = current.indexOf("?");
    return q < 0 ? { pathname: current, search: "" } : { pathname: current.slice(0, q), search: current.slice(q) };
  }, [current]);
}

/**
 * The search parameters and a setter that replaces them (a new history entry, so Back returns
 * to the previous filters). Empty values are dropped from the URL.
 */
export function useSearchParams(): [URLSearchParams, (next: Record<string, string>) => void] {
  const { pathname, search } = useLocation();
  const params = useMemo(() => new URLSearchParams(search), [search]);
  const set = useCallback(
    (next: Record<string, string>) => {
      const p = new URLSearchParams();
      for (const [k, v] of Object.entries(next)) if (v !== "") p.set(k, v);
      const q = p.toString();
      navigate(q ? `${pathname}?${q}` : pathname);
    },
    [pathname],
  );
  return [params, set];
}

/** Props of {@link Link}: an anchor whose `to` is a console path. */
export interface LinkProps extends Omit<AnchorHTMLAttributes<HTMLAnchorElement>, "href"> {
  readonly to: string;
  readonly children: ReactNode;
}

/** A link inside the console: a real `<a href>` (open in a new tab works), routed in place on a plain click. */
export function Link({ to, onClick, children, ...rest }: LinkProps) {
  const handle = (e: MouseEvent<HTMLAnchorElement>) => {
    onClick?.(e);
    if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    if (rest.target && rest.target !== "_self") return;
    e.preventDefault();
    navigate(to);
  };
  return (
    <a href={to} onClick={handle} {...rest}>
      {children}
    </a>
  );
}
