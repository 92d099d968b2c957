/** Loading indicators: a spinner with a spoken label, and skeleton lines for content to come. */

/** A spinner. `decorative` hides it from assistive technology (the surrounding text says it). */
export function Spinner({ label = "Loading", size = "normal", decorative = false }: { label?: string; size?: "normal" | "small"; decorative?: boolean }) {
  if (decorative) return <span className={`spinner spinner-${size}`} aria-hidden="true" />;
  return (
    <span role="status" className="spinner-wrap">
      <span className={`spinner spinner-${size}`} aria-hidden="true" />
      <span className="visually-hidden">{label}</span>
    </span>
  );
}

/** Grey placeholder lines while content loads; announced once as "Loading". */
export function Skeleton({ lines = 3, label = "Loading" }: { lines?: number; label?: string }) {
  return (
    <div className="skeleton" role="status" aria-live="polite">
      <span className="visually-hidden">{label}</span>
      {Array.from({ length: lines }, (_, i) => (
        <span key={i} className="skeleton-line" aria-hidden="true" />
      ))}
    </div>
  );
}
