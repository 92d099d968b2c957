/**
 * The metric selectors a PromQL expression reads, for tests that hold dashboards and alerts to
 * the metrics the apps export: `selectorsOf('sum by (le) (rate(x_bucket{a="b"}[5m]))')` →
 * `[{ metric: "x_bucket", labels: ["a"] }]`.
 *
 * A tokenizer over the PromQL grammar, not an evaluator: strings, durations, ranges and
 * subqueries (`[5m:1m]`, Grafana's `[$__rate_interval]`), grouping clauses (`by (…)`, `on (…)`,
 * `group_left (…)`), functions and aggregations are recognised and skipped; every other
 * identifier is a metric name. What it cannot read for certain — an unknown function, a regex on
 * `__name__`, a Grafana variable outside a range, unbalanced brackets — throws, so a query it
 * misreads fails the test instead of passing it.
 */

/** One instant or range selector: the metric name and the label names its matchers test. */
export interface Selector {
  readonly metric: string;
  readonly labels: readonly string[];
}

const AGGREGATIONS = new Set([
  "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio",
]);

const FUNCTIONS = new Set([
  "abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh", "avg_over_time", "ceil", "changes",
  "clamp", "clamp_max", "clamp_min", "cos", "cosh", "count_over_time", "day_of_month", "day_of_week", "day_of_year",
  "days_in_month", "deg", "delta", "deriv", "double_exponential_smoothing", "exp", "floor", "histogram_avg", "histogram_count",
  "histogram_fraction", "histogram_quantile", "histogram_stddev", "histogram_stdvar", "histogram_sum", "holt_winters", "hour",
  "idelta", "increase", "irate", "label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
  "max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear", "present_over_time", "quantile_over_time", "rad",
  "rate", "resets", "round", "scalar", "sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt",
  "stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time", "timestamp", "vector", "year",
  // the @ modifier's
  "start", "end",
]);

/** Keywords followed by a parenthesised list of label names (optional for the group modifiers). */
const LABEL_LIST_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const OPERATOR_KEYWORDS = new Set(["and", "or", "unless", "bool", "atan2", "offset", "inf", "nan"]);

const IDENT = /[a-zA-Z_:][a-zA-Z0-9_:]*/y;
const LABEL = /[a-zA-Z_][a-zA-Z0-9_]*/y;
const NUMBER = /(?:0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])?(?:\d+(?:ms|[smhdwy]))*)/y;
const OPERATOR = /(?:==|!=|<=|>=|[-+*/%^<>,@])/y;

/** The selectors of `expr`, in order of appearance; throws on what it cannot read for certain. */
export function selectorsOf(expr: string): Selector[] {
  if (expr.length > 10_000) throw new Error("promql: expression longer than 10,000 characters");
  const out: Selector[] = [];
  let i = 0;
  let depth = 0;
  const fail = (why: string): never => {
    throw new Error(`promql: ${why} at ${i} in ${JSON.stringify(expr)}`);
  };
  const match = (re: RegExp): string | undefined => {
    re.lastIndex = i;
    const m = re.exec(expr);
    if (!m) return undefined;
    i = re.lastIndex;
    return m[0];
  };
  const skipSpace = () => {
    while (i < expr.length) {
      if (/\s/.test(expr[i]!)) i++;
      else if (expr[i] === "#") while (i < expr.length && expr[i] !== "\n") i++;
      else break;
    }
  };
  const skipString = () => {
    const quote = expr[i]!;
    for (i++; i < expr.length; i++) {
      if (quote !== "`" && expr[i] === "\\") i++;
      else if (expr[i] === quote) {
        i++;
        return;
      }
    }
    fail("unterminated string");
  };
  // `{a="x", b=~"y"}`: the label names tested, and the metric if `__name__` is matched exactly.
  const matchers = (): { labels: string[]; name?: string } => {
    const labels: string[] = [];
    let name: string | undefined;
    i++; // {
    for (;;) {
      skipSpace();
      if (expr[i] === "}") {
        i++;
        return name === undefined ? { labels } : { labels, name };
      }
      const label = match(LABEL) ?? fail("expected a label name");
      skipSpace();
      const op = match(/=~|!~|!=|=/y) ?? fail("expected a matcher operator");
      skipSpace();
      if (!`"'\``.includes(expr[i] ?? "")) fail("expected a quoted label value");
      const start = i;
      skipString();
      if (label === "__name__") {
        if (op !== "=") fail("a regex or negative matcher on __name__ names no one metric");
        name = JSON.parse(`"${expr.slice(start + 1, i - 1)}"`) as string;
      } else labels.push(label);
      skipSpace();
      if (expr[i] === ",") i++;
      else if (expr[i] !== "}") fail("expected , or }");
    }
  };
  // `[5m]`, `[5m:1m]`, `[$__rate_interval]`: durations and Grafana's interval variables only.
  const range = () => {
    const end = expr.indexOf("]", i);
    if (end < 0) fail("unterminated range");
    if (!/^\[\s*(?:\$__(?:rate_interval|interval|range)|\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)\s*(?::\s*(?:\$__interval|\d+(?:ms|[smhdwy]))?\s*)?\]$/.test(expr.slice(i, end + 1))) {
      fail("a range holds a duration, a subquery step or a Grafana interval variable");
    }
    i = end + 1;
  };
  const labelList = () => {
    skipSpace();
    if (expr[i] !== "(") return false;
    i++;
    for (;;) {
      skipSpace();
      if (expr[i] === ")") {
        i++;
        return true;
      }
      match(LABEL) ?? fail("expected a label name in a grouping list");
      skipSpace();
      if (expr[i] === ",") i++;
      else if (expr[i] !== ")") fail("expected , or ) in a grouping list");
    }
  };

  while (skipSpace(), i < expr.length) {
    const c = expr[i]!;
    if (c === '"' || c === "'" || c === "`") skipString();
    else if (c === "(") {
      depth++;
      i++;
    }
    else if (c === ")") {
      if (--depth < 0) fail("unbalanced )");
      i++;
    } else if (c === "[") range();
    else if (c === "{") {
      const m = matchers();
      if (m.name === undefined) fail("a selector without a metric name");
      out.push({ metric: m.name!, labels: m.labels });
    } else if (c === "$") fail("a Grafana variable outside a range cannot be checked");
    else if (/[\d.]/.test(c)) match(NUMBER) ?? fail("bad number");
    else if (/[a-zA-Z_:]/.test(c)) {
      const word = match(IDENT)!;
      skipSpace();
      if (LABEL_LIST_KEYWORDS.has(word)) {
        if (!labelList() && (word === "by" || word === "without" || word === "on" || word === "ignoring")) fail(`${word} needs a label list`);
      } else if (OPERATOR_KEYWORDS.has(word.toLowerCase())) {
        // nothing to read: an operator, or offset whose duration is read as a number next
      } else if (AGGREGATIONS.has(word)) {
        if (expr[i] !== "(" && !/^(by|without)\b/.test(expr.slice(i))) fail(`${word} needs its arguments`);
      } else if (expr[i] === "(") {
        if (!FUNCTIONS.has(word)) fail(`unknown function ${word}`);
      } else {
        const labels = expr[i] === "{" ? matchers() : { labels: [] as string[] };
        if ("name" in labels) fail(`${word} names its metric twice`);
        out.push({ metric: word, labels: labels.labels });
      }
    } else match(OPERATOR) ?? fail(`unexpected ${JSON.stringify(c)}`);
  }
  if (depth !== 0) fail("unbalanced (");
  return out;
}
