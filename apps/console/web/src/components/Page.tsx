/**
 * A screen's frame: its one h1 (focused after each navigation, so screen readers hear the new
 * page), the document title, actions beside the heading, and the permission the screen needs.
 */
import type { Permission } from "@lcp/domain";
import { useEffect, type ReactNode } from "react";
import { useSession } from "../lib/session-context.js";
import { Notice } from "./ErrorBanner.js";

/** Props of {@link Page}. */
export interface PageProps {
  /** The h1, and the start of the document title. */
  readonly title: string;
  /** A word above the heading ("Deployment"), not part of it. */
  readonly kicker?: string;
  /** Buttons or links beside the heading. */
  readonly actions?: ReactNode;
  /** A sentence under the heading. */
  readonly intro?: ReactNode;
  /** Without it the screen says why it is closed to this role, and renders nothing else. */
  readonly permission?: Permission;
  readonly children?: ReactNode;
}

/** A screen's frame; see the module comment. */
export function Page({ title, kicker, actions, intro, permission, children }: PageProps) {
  const { lacks } = useSession();
  const missing = permission ? lacks(permission) : null;
  useEffect(() => {
    document.title = `${title} · Licensing console`;
  }, [title]);
  return (
    <>
      <div className="page-head">
        <div>
          {kicker ? <p className="kicker">{kicker}</p> : null}
          <h1 tabIndex={-1} className="page-title">
            {title}
          </h1>
        </div>
        {actions && !missing ? <div className="page-actions">{actions}</div> : null}
      </div>
      {intro ? <div className="page-intro">{intro}</div> : null}
      {missing ? (
        <Notice tone="warning" title="Your role cannot open this page">
          <p>This page {missing}. Ask an administrator for a role that grants it.</p>
        </Notice>
      ) : (
        children
      )}
    </>
  );
}

/** A titled section of a screen (an h2 and its content). */
export function Section({ title, actions, children, className }: { title: string; actions?: ReactNode; children: ReactNode; className?: string }) {
  const id = `section-${title.toLowerCase().replace(/[^a-z0-9]+/g, "-")}`;
  return (
    <section className={`section${className ? ` ${className}` : ""}`} aria-labelledby={id}>
      <div className="section-head">
        <h2 id={id}>{title}</h2>
        {actions ? <div className="section-actions">{actions}</div> : null}
      </div>
      {children}
    </section>
  );
}
