/**
 * State changes per hour as stacked SVG columns: changes that took deployments out of service
 * (hatched) under those that brought them back (solid), each column's total written above
 * it, and a legend naming both with their totals, so neither is told by colour alone. The
 * SVG is one image to assistive technology, named by a summary sentence; every number is in
 * the table below it, hidden visually until "Show the numbers" is pressed but always read by
 * screen readers.
 */
import { useId, useState } from "react";
import { barLength, countScale, formatCount } from "../lib/chart.js";
import { actionTotals, hourlySummaryText, stateChangeInfo, type HourBucket } from "../lib/fleet.js";
import { useElementWidth } from "../lib/use-element-width.js";
import { Button } from "./Button.js";
import "./operations.css";

/** Props of {@link HourlyChart}. */
export interface HourlyChartProps {
  readonly buckets: readonly HourBucket[];
  /** The actions counted, in the table's column order. */
  readonly actions: readonly string[];
  /** The table's caption (also names the toggle's target). */
  readonly caption: string;
}

const hourFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dayHourFormat = new Intl.DateTimeFormat(undefined, { weekday: "short", hour: "2-digit", minute: "2-digit" });

/** A bucket's start as the axis writes it ("14:00"). */
export function hourLabel(ms: number): string {
  return hourFormat.format(ms);
}

const HEIGHT = 220;
const TOP = 18;
const BOTTOM = 26;
const LEFT = 40;
const RIGHT = 8;

function Swatch({ kind, patternId }: { kind: "left" | "returned"; patternId: string }) {
  return (
    <svg className="swatch" width="14" height="14" viewBox="0 0 14 14" aria-hidden="true" focusable="false">
      {/* The hatched fill is an attribute, not a class: a class's CSS fill would override it. */}
      {kind === "left" ? <rect x="0" y="0" width="14" height="14" rx="2" fill={`url(#${patternId})`} /> : <rect x="0" y="0" width="14" height="14" rx="2" className="tone-returned" />}
    </svg>
  );
}

/** The hourly state-change chart; see the module comment. */
export function HourlyChart({ buckets, actions, caption }: HourlyChartProps) {
  const [ref, width] = useElementWidth<HTMLDivElement>();
  const [showNumbers, setShowNumbers] = useState(false);
  const rawId = useId();
  const patternId = `hatch-${rawId.replace(/[^A-Za-z0-9_-]/g, "")}`;
  const tableId = `${patternId}-table`;

  const plotW = Math.max(120, width - LEFT - RIGHT);
  const plotH = HEIGHT - TOP - BOTTOM;
  const scale = countScale(Math.max(0, ...buckets.map((b) => b.total)), 4);
  const col = plotW / Math.max(1, buckets.length);
  const barW = Math.max(2, Math.min(28, col * 0.7));
  const left = buckets.reduce((n, b) => n + b.left, 0);
  const returned = buckets.reduce((n, b) => n + b.returned, 0);
  const totals = actionTotals(buckets, actions);
  const shownActions = totals.map((t) => t.action);
  // Every second or third hour on the axis keeps the labels apart at 1024 px; counted back
  // from "now", so the last label never collides with the one before it.
  const labelEvery = col < 30 ? 3 : col < 44 ? 2 : 1;

  return (
    <div className="chart">
      <div ref={ref} className="chart-box">
        <svg className="chart-svg" role="img" aria-label={hourlySummaryText(buckets, hourLabel)} width={width} height={HEIGHT} viewBox={`0 0 ${width} ${HEIGHT}`}>
          <defs>
            <pattern id={patternId} width="6" height="6" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">
              <rect width="6" height="6" className="tone-left" />
              <line x1="0" y1="0" x2="0" y2="6" className="chart-hatch" />
            </pattern>
          </defs>
          <g className="chart-grid" aria-hidden="true">
            {scale.ticks.map((t) => {
              const y = TOP + plotH - barLength(t, scale.max, plotH, 0);
              return (
                <g key={t}>
                  <line x1={LEFT} x2={LEFT + plotW} y1={y} y2={y} />
                  <text x={LEFT - 6} y={y} textAnchor="end" dominantBaseline="middle" className="chart-tick">
                    {formatCount(t)}
                  </text>
                </g>
              );
            })}
          </g>
          {buckets.map((b, i) => {
            const x = LEFT + i * col + (col - barW) / 2;
            const hReturned = barLength(b.returned, scale.max, plotH);
            const hLeft = barLength(b.left, scale.max, plotH);
            const base = TOP + plotH;
            const label = `${dayHourFormat.format(b.startMs)}${b.partial ? " (so far)" : ""}: ${b.left} out of service, ${b.returned} back into service`;
            return (
              <g key={b.startMs} className={b.partial ? "chart-partial" : undefined}>
                <title>{label}</title>
                {hReturned > 0 ? <rect x={x} y={base - hReturned} width={barW} height={hReturned} className="tone-returned" /> : null}
                {hLeft > 0 ? <rect x={x} y={base - hReturned - hLeft} width={barW} height={hLeft} fill={`url(#${patternId})`} /> : null}
                {b.total > 0 && col >= 14 ? (
                  <text x={x + barW / 2} y={base - hReturned - hLeft - 4} textAnchor="middle" className="chart-value">
                    {b.total}
                  </text>
                ) : null}
                {(buckets.length - 1 - i) % labelEvery === 0 ? (
                  <text x={LEFT + i * col + col / 2} y={HEIGHT - 8} textAnchor="middle" className="chart-tick">
                    {b.partial ? "now" : hourLabel(b.startMs)}
                  </text>
                ) : null}
              </g>
            );
          })}
          <line x1={LEFT} x2={LEFT + plotW} y1={TOP + plotH} y2={TOP + plotH} className="chart-axis" aria-hidden="true" />
        </svg>
      </div>
      <div className="chart-foot">
        <ul className="legend" aria-label="Legend">
          <li>
            <Swatch kind="left" patternId={patternId} />
            <span>
              Out of service (hatched): <strong>{formatCount(left)}</strong>
            </span>
          </li>
          <li>
            <Swatch kind="returned" patternId={patternId} />
            <span>
              Back into service (solid): <strong>{formatCount(returned)}</strong>
            </span>
          </li>
          {totals.map((t) => (
            <li key={t.action} className="legend-detail">
              {stateChangeInfo(t.action).label}: {formatCount(t.count)}
            </li>
          ))}
        </ul>
        <Button size="small" variant="ghost" aria-expanded={showNumbers} aria-controls={tableId} onClick={() => setShowNumbers((s) => !s)}>
          {showNumbers ? "Hide the numbers" : "Show the numbers"}
        </Button>
      </div>
      <div id={tableId} className={showNumbers ? "table-scroll chart-numbers" : "visually-hidden"}>
        <table className="table">
          <caption className={showNumbers ? "table-caption" : undefined}>{caption}</caption>
          <thead>
            <tr>
              <th scope="col">Hour starting</th>
              <th scope="col">Out of service</th>
              <th scope="col">Back into service</th>
              {shownActions.map((a) => (
                <th scope="col" key={a}>
                  {stateChangeInfo(a).label}
                </th>
              ))}
              <th scope="col">Total</th>
            </tr>
          </thead>
          <tbody>
            {buckets.map((b) => (
              <tr key={b.startMs}>
                <th scope="row" className="nowrap">
                  {dayHourFormat.format(b.startMs)}
                  {b.partial ? " (so far)" : ""}
                </th>
                <td>{b.left}</td>
                <td>{b.returned}</td>
                {shownActions.map((a) => (
                  <td key={a}>{b.byAction[a] ?? 0}</td>
                ))}
                <td>{b.total}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </div>
  );
}
