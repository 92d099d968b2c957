/**
 * A horizontal bar chart drawn as SVG: one labelled row per category, its bar, and its number
 * (with its share of the total) written after the bar, so no bar is told apart by colour
 * alone. The SVG is one image to assistive technology (`role="img"`, named by `summary`); the
 * caller puts the same numbers in a table or legend beside it.
 */
import { barLength, countScale, formatCount, shareText } from "../lib/chart.js";
import { useElementWidth } from "../lib/use-element-width.js";
import "./operations.css";

/** One bar. `tone` picks its colour from the design tokens (`active`, `grace`, `locked`, …). */
export interface BarDatum {
  readonly key: string;
  readonly label: string;
  readonly value: number;
  readonly tone: string;
}

/** Props of {@link BarChart}. */
export interface BarChartProps {
  readonly data: readonly BarDatum[];
  /** The chart in a sentence: its accessible name. */
  readonly summary: string;
  /** Shares are of this total (default: the sum of the values). */
  readonly total?: number;
}

const ROW = 30;
const BAR = 18;
const PAD = 8;

/** A horizontal bar chart; see the module comment. */
export function BarChart({ data, summary, total }: BarChartProps) {
  const [ref, width] = useElementWidth<HTMLDivElement>();
  const sum = total ?? data.reduce((n, d) => n + d.value, 0);
  const scale = countScale(Math.max(0, ...data.map((d) => d.value)), 4);
  const labelWidth = Math.min(168, Math.max(96, Math.round(width * 0.3)));
  const valueWidth = 112;
  const barArea = Math.max(40, width - labelWidth - valueWidth - PAD * 2);
  const height = data.length * ROW + PAD;
  return (
    <div ref={ref} className="chart-box">
      <svg className="chart-svg" role="img" aria-label={summary} width={width} height={height} viewBox={`0 0 ${width} ${height}`}>
        {/* Gridlines at the axis ticks, so bar lengths read against round numbers. */}
        <g className="chart-grid" aria-hidden="true">
          {scale.ticks.map((t) => {
            const x = labelWidth + PAD + barLength(t, scale.max, barArea, 0);
            return <line key={t} x1={x} x2={x} y1={0} y2={height - PAD / 2} />;
          })}
        </g>
        {data.map((d, i) => {
          const y = i * ROW + PAD / 2;
          const len = barLength(d.value, scale.max, barArea);
          const x0 = labelWidth + PAD;
          return (
            <g key={d.key}>
              <title>{`${d.label}: ${formatCount(d.value)} (${shareText(d.value, sum)})`}</title>
              <text x={labelWidth} y={y + ROW / 2} textAnchor="end" dominantBaseline="middle" className="chart-label">
                {d.label}
              </text>
              <rect x={x0} y={y + (ROW - BAR) / 2} width={len} height={BAR} rx={3} className={`tone-${d.tone}`} />
              <text x={x0 + len + 6} y={y + ROW / 2} dominantBaseline="middle" className="chart-value">
                {`${formatCount(d.value)} (${shareText(d.value, sum)})`}
              </text>
            </g>
          );
        })}
      </svg>
    </div>
  );
}
