/**
 * How fresh a polled view is: "Updated 4 seconds ago", and a button to pause and resume the
 * polling (WCAG 2.2.2: content that updates by itself can be paused). Not a live region: a
 * view that refreshes every two seconds must not talk every two seconds.
 */
import { formatDateTime, formatRelative } from "../lib/format.js";
import { useClock } from "../lib/use-clock.js";
import { Button } from "./Button.js";
import "./operations.css";

/** Props of {@link LiveStatus}. */
export interface LiveStatusProps {
  /** When the data shown was fetched (epoch ms), 0 before the first answer. */
  readonly updatedAt: number;
  readonly paused: boolean;
  readonly onTogglePause: () => void;
  /** How often it polls, in words ("every 2 seconds"). */
  readonly every: string;
}

/** "Updated … ago" and Pause/Resume; see the module comment. */
export function LiveStatus({ updatedAt, paused, onTogglePause, every }: LiveStatusProps) {
  const now = useClock(1000);
  const at = updatedAt > 0 ? new Date(updatedAt) : null;
  return (
    <div className="live">
      <span className={paused ? "live-mark live-mark-paused" : "live-mark"} aria-hidden="true" />
      <span>{paused ? "Live updates paused" : `Live: refreshed ${every} while this tab is visible`}</span>
      <span aria-hidden="true">·</span>
      <span>
        {at ? (
          <>
            Updated{" "}
            <time dateTime={at.toISOString()} title={formatDateTime(at, true)}>
              {formatRelative(at, Math.max(now, updatedAt))}
            </time>
          </>
        ) : (
          "Not loaded yet"
        )}
      </span>
      <Button size="small" variant="ghost" onClick={onTogglePause}>
        {paused ? "Resume live updates" : "Pause live updates"}
      </Button>
    </div>
  );
}
