/** A failed call in words (lib/errors.ts): headline, the server's message, its reason. */
import type { ReactNode } from "react";
import { describeError } from "../lib/errors.js";
import { Button } from "./Button.js";

const plain = (s: string) => s.toLowerCase().replace(/[^a-z0-9]+/g, " ").trim();
const sameSentence = (a: string, b: string) => plain(a) === plain(b);

/** Props of {@link ErrorBanner}. */
export interface ErrorBannerProps {
  readonly error: unknown;
  /** Replaces the headline the error's code gives ("Could not load licences"). */
  readonly title?: string;
  /** Offers a "Try again" button. */
  readonly onRetry?: () => void;
  readonly children?: ReactNode;
}

/** An error alert; see the module comment. */
export function ErrorBanner({ error, title, onRetry, children }: ErrorBannerProps) {
  const d = describeError(error);
  return (
    <div className="banner banner-error" role="alert">
      <p className="banner-title">{title ?? d.title}</p>
      <p>{d.message}</p>
      {d.explanation && !sameSentence(d.explanation, d.message) ? <p>{d.explanation}</p> : null}
      {d.reason ? (
        <p className="banner-meta">
          Reason: <code>{d.reason}</code>
        </p>
      ) : null}
      {children}
      {onRetry ? (
        <p>
          <Button size="small" onClick={onRetry}>
            Try again
          </Button>
        </p>
      ) : null}
    </div>
  );
}

/** A plain notice (info, success or warning) that is not an error. */
export function Notice({ tone = "info", title, children, live = false }: { tone?: "info" | "success" | "warning"; title?: string; children: ReactNode; live?: boolean }) {
  return (
    <div className={`banner banner-${tone}`} role={live ? "status" : undefined}>
      {title ? <p className="banner-title">{title}</p> : null}
      {children}
    </div>
  );
}
