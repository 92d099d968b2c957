/** A list of facts (term and value) as a description list: a deployment's, a file's, an answer's. */
import type { ReactNode } from "react";

/** The facts, in order; a term is also the row's key, so terms are unique. */
export function Facts({ items }: { items: ReadonlyArray<readonly [string, ReactNode]> }) {
  return (
    <dl className="dl">
      {items.map(([term, value]) => (
        <div key={term} className="dl-row">
          <dt>{term}</dt>
          <dd>{value}</dd>
        </div>
      ))}
    </dl>
  );
}
