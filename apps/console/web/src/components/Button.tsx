/**
 * The console's button. A button the operator may not use stays visible and focusable with
 * `aria-disabled` and says why (shown on hover and focus, read as its description), instead of
 * vanishing: an auditor learns which role could do it.
 */
import { useId, type ButtonHTMLAttributes, type MouseEvent, type ReactNode } from "react";
import { Spinner } from "./Spinner.js";

/** How prominent a button is. */
export type ButtonVariant = "primary" | "secondary" | "danger" | "ghost";

/** Props of {@link Button}. */
export interface ButtonProps extends ButtonHTMLAttributes<HTMLButtonElement> {
  readonly variant?: ButtonVariant;
  readonly size?: "normal" | "small";
  /** Set when the operator may not use it: the button is inert and this text says why. */
  readonly disabledReason?: string | null;
  /** A call is running: inert, with a spinner; the accessible name does not change. */
  readonly busy?: boolean;
  readonly children: ReactNode;
}

/** A button; see the module comment. */
export function Button({
  variant = "secondary",
  size = "normal",
  disabledReason,
  busy = false,
  type = "button",
  className,
  onClick,
  children,
  ...rest
}: ButtonProps) {
  const reasonId = useId();
  const inert = Boolean(disabledReason);
  const classes = ["btn", `btn-${variant}`, size === "small" ? "btn-small" : "", className ?? ""].filter(Boolean).join(" ");
  const handle = (e: MouseEvent<HTMLButtonElement>) => {
    if (inert || busy) {
      e.preventDefault();
      return;
    }
    onClick?.(e);
  };
  const describedBy = inert ? [reasonId, rest["aria-describedby"]].filter(Boolean).join(" ") : rest["aria-describedby"];
  const button = (
    <button
      {...rest}
      type={type}
      className={classes}
      onClick={handle}
      aria-disabled={inert || busy ? true : undefined}
      aria-describedby={describedBy}
      aria-busy={busy || undefined}
    >
      {busy ? <Spinner size="small" decorative /> : null}
      {children}
    </button>
  );
  if (!inert) return button;
  return (
    <span className="has-tip">
      {button}
      <span id={reasonId} role="tooltip" className="tip">
        {disabledReason}
      </span>
    </span>
  );
}
