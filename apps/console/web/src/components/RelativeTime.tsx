/** A moment shown as "3 minutes ago", with the exact time on hover and in `<time datetime>`. */
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { dateOf, formatDate, formatDateTime, formatRelative } from "../lib/format.js";
import { useNow } from "../lib/use-now.js";

/** A relative time; `fallback` when the timestamp is unset. */
export function RelativeTime({ value, fallback = "—", absolute = false }: { value: Timestamp | Date | undefined | null; fallback?: string; absolute?: boolean }) {
  const now = useNow();
  const date = value instanceof Date ? value : dateOf(value ?? undefined);
  if (!date) return <span className="muted">{fallback}</span>;
  const exact = formatDateTime(date, true);
  return (
    <time dateTime={date.toISOString()} title={exact}>
      {absolute ? `${formatDateTime(date)} (${formatRelative(date, now)})` : formatRelative(date, now)}
    </time>
  );
}

/** A moment as a date and time (for expiry and validity dates), with the relative time on hover. */
export function DateTime({ value, fallback = "—", dateOnly = false }: { value: Timestamp | Date | undefined | null; fallback?: string; dateOnly?: boolean }) {
  const now = useNow();
  const date = value instanceof Date ? value : dateOf(value ?? undefined);
  if (!date) return <span className="muted">{fallback}</span>;
  return (
    <time dateTime={date.toISOString()} title={`${formatDateTime(date, true)} (${formatRelative(date, now)})`}>
      {dateOnly ? formatDate(date) : formatDateTime(date)}
    </time>
  );
}
