/**
 * The console's table: a caption, a sticky header, columns sortable with the keyboard
 * (`aria-sort` on the header), rows that may expand, and one place for the loading, error and
 * empty states. Lists are keyset-paged by the services, so paging is "Next page" and
 * "First page"; sorting orders the rows of the page shown.
 */
import { Fragment, useMemo, useState, type ReactNode } from "react";
import { Button } from "./Button.js";
import { ErrorBanner } from "./ErrorBanner.js";
import { Skeleton } from "./Spinner.js";

/** One column. */
export interface Column<Row> {
  readonly key: string;
  readonly header: string;
  readonly render: (row: Row) => ReactNode;
  /** Makes the column sortable by this value. */
  readonly sortValue?: (row: Row) => string | number;
  readonly className?: string;
}

/** Keyset paging controls. */
export interface Paging {
  /** 1-based number of the page shown. */
  readonly page: number;
  readonly hasNext: boolean;
  readonly onNext: () => void;
  readonly onFirst: () => void;
}

/** Props of {@link DataTable}. */
export interface DataTableProps<Row> {
  /** The table's caption, its accessible name. */
  readonly caption: string;
  /** Hide the caption visually (a heading above already says it). */
  readonly captionHidden?: boolean;
  readonly columns: ReadonlyArray<Column<Row>>;
  readonly rows: readonly Row[] | undefined;
  readonly rowKey: (row: Row) => string;
  readonly loading?: boolean;
  readonly error?: unknown;
  readonly onRetry?: () => void;
  /** What an empty list says. */
  readonly empty?: ReactNode;
  readonly paging?: Paging;
  /** Rows expand to show this; the toggle is named by `expandLabel`. */
  readonly renderExpanded?: (row: Row) => ReactNode;
  readonly expandLabel?: (row: Row) => string;
  /** A refetch is running while the old rows are shown. */
  readonly refreshing?: boolean;
}

type Sort = { key: string; dir: "ascending" | "descending" } | null;

function compare(a: string | number, b: string | number): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true, sensitivity: "base" });
}

/** A data table; see the module comment. */
export function DataTable<Row>(props: DataTableProps<Row>) {
  const { caption, captionHidden, columns, rows, rowKey, loading, error, onRetry, empty, paging, renderExpanded, expandLabel, refreshing } = props;
  const [sort, setSort] = useState<Sort>(null);
  const [expanded, setExpanded] = useState<ReadonlySet<string>>(new Set());
  const sorted = useMemo(() => {
    if (!rows || !sort) return rows;
    const col = columns.find((c) => c.key === sort.key);
    if (!col?.sortValue) return rows;
    const value = col.sortValue;
    const out = [...rows].sort((a, b) => compare(value(a), value(b)));
    return sort.dir === "descending" ? out.reverse() : out;
  }, [rows, sort, columns]);
  const width = columns.length + (renderExpanded ? 1 : 0);
  const toggleSort = (key: string) =>
    setSort((s) => (s?.key === key ? { key, dir: s.dir === "ascending" ? "descending" : "ascending" } : { key, dir: "ascending" }));
  const toggleRow = (key: string) =>
    setExpanded((s) => {
      const next = new Set(s);
      if (next.has(key)) next.delete(key);
      else next.add(key);
      return next;
    });

  let body: ReactNode;
  if (error && !rows) {
    body = (
      <tr>
        <td colSpan={width}>
          <ErrorBanner error={error} title={`Could not load ${caption.toLowerCase()}`} onRetry={onRetry} />
        </td>
      </tr>
    );
  } else if (loading && !rows) {
    body = (
      <tr>
        <td colSpan={width}>
          <Skeleton lines={4} label={`Loading ${caption.toLowerCase()}`} />
        </td>
      </tr>
    );
  } else if (!sorted || sorted.length === 0) {
    body = (
      <tr>
        <td colSpan={width}>{empty ?? <p className="muted">Nothing to show.</p>}</td>
      </tr>
    );
  } else {
    body = sorted.map((row) => {
      const key = rowKey(row);
      const open = expanded.has(key);
      const detailId = `row-detail-${key}`;
      return (
        <Fragment key={key}>
          <tr className={open ? "row-open" : undefined}>
            {renderExpanded ? (
              <td className="col-expand">
                <Button size="small" variant="ghost" aria-expanded={open} aria-controls={open ? detailId : undefined} aria-label={expandLabel?.(row)} onClick={() => toggleRow(key)}>
                  <span aria-hidden="true" className="chevron">
                    {open ? "▾" : "▸"}
                  </span>
                  <span className="visually-hidden">Details</span>
                </Button>
              </td>
            ) : null}
            {columns.map((c) => (
              <td key={c.key} className={c.className}>
                {c.render(row)}
              </td>
            ))}
          </tr>
          {renderExpanded && open ? (
            <tr className="row-detail" id={detailId}>
              <td colSpan={width}>{renderExpanded(row)}</td>
            </tr>
          ) : null}
        </Fragment>
      );
    });
  }

  return (
    <div className="table-block">
      {error && rows ? <ErrorBanner error={error} title={`Could not refresh ${caption.toLowerCase()}`} onRetry={onRetry} /> : null}
      <div className="table-scroll" role="region" aria-label={caption} tabIndex={0}>
        <table className="table" aria-busy={loading || refreshing ? true : undefined}>
          <caption className={captionHidden ? "visually-hidden" : "table-caption"}>{caption}</caption>
          <thead>
            <tr>
              {renderExpanded ? (
                <th scope="col" className="col-expand">
                  <span className="visually-hidden">Details</span>
                </th>
              ) : null}
              {columns.map((c) => {
                const dir = sort?.key === c.key ? sort.dir : undefined;
                return (
                  <th key={c.key} scope="col" className={c.className} aria-sort={c.sortValue ? (dir ?? "none") : undefined}>
                    {c.sortValue ? (
                      <button type="button" className="sort" onClick={() => toggleSort(c.key)}>
                        {c.header}
                        <span aria-hidden="true" className="sort-mark">
                          {dir === "ascending" ? "▲" : dir === "descending" ? "▼" : "↕"}
                        </span>
                      </button>
                    ) : (
                      c.header
                    )}
                  </th>
                );
              })}
            </tr>
          </thead>
          <tbody>{body}</tbody>
        </table>
      </div>
      {paging ? <Pager {...paging} busy={Boolean(loading || refreshing)} label={caption} /> : null}
    </div>
  );
}

/** "First page" / "Next page" for keyset-paged lists. */
export function Pager({ page, hasNext, onNext, onFirst, busy, label }: Paging & { busy?: boolean; label: string }) {
  return (
    <nav className="pager" aria-label={`Pages of ${label.toLowerCase()}`}>
      <Button size="small" onClick={onFirst} disabled={page <= 1}>
        First page
      </Button>
      <span className="pager-page" aria-live="polite">
        Page {page}
      </span>
      <Button size="small" onClick={onNext} disabled={!hasNext || busy}>
        Next page
      </Button>
    </nav>
  );
}
