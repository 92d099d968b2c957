/**
 * A link that looks like a button ("New license"): a real link when the operator may follow it;
 * otherwise a link marked disabled that stays focusable and says why, like {@link Button}.
 */
import { useId, type ReactNode } from "react";
import { Link } from "../lib/navigation.js";

/** Props of {@link ActionLink}. */
export interface ActionLinkProps {
  readonly to: string;
  readonly variant?: "primary" | "secondary";
  readonly size?: "normal" | "small";
  /** Set when the operator may not go there: the link is inert and this text says why. */
  readonly disabledReason?: string | null;
  readonly children: ReactNode;
}

/** A button-styled link; see the module comment. */
export function ActionLink({ to, variant = "secondary", size = "normal", disabledReason, children }: ActionLinkProps) {
  const reasonId = useId();
  const classes = `btn btn-${variant}${size === "small" ? " btn-small" : ""}`;
  if (!disabledReason) {
    return (
      <Link to={to} className={classes}>
        {children}
      </Link>
    );
  }
  return (
    <span className="has-tip">
      <span role="link" aria-disabled="true" tabIndex={0} aria-describedby={reasonId} className={classes}>
        {children}
      </span>
      <span id={reasonId} role="tooltip" className="tip">
        {disabledReason}
      </span>
    </span>
  );
}
