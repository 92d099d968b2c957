/**
 * A clock for text that must stay right to the second ("updated 3 seconds ago" beside a
 * 2-second poll), where the shared 15-second clock (use-now.ts) would lag behind the data.
 */
import { useEffect, useState } from "react";

/** The time now in epoch ms, refreshed every `intervalMs` while the component is mounted. */
export function useClock(intervalMs = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return now;
}
