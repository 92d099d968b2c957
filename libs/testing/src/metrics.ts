import { get } from "node:https";

/** GETs `<url>/metrics` over TLS (trusting `caPem`, no client certificate), as Prometheus would. */
export function scrapeMetrics(url: string, caPem: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(`${url}/metrics`, { ca: caPem }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (body += chunk));
      res.on("end", () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`GET /metrics: ${res.statusCode}`))));
    }).on("error", reject);
  });
}

/** The value of the first sample of `name` whose labels include every `labels` pair (NaN if none). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = m[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => have.includes(`${k}="${v}"`))) return Number(m[3]);
  }
  return Number.NaN;
}

/** One sample of the text exposition. */
export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** One metric family of the text exposition: its `# TYPE`, `# HELP` and samples. */
export interface MetricFamily {
  readonly name: string;
  readonly type: "counter" | "gauge" | "histogram" | "summary" | "untyped";
  readonly help: string;
  readonly samples: Sample[];
}

const SUFFIXES: Record<MetricFamily["type"], readonly string[]> = {
  counter: [""],
  gauge: [""],
  untyped: [""],
  histogram: ["_bucket", "_sum", "_count"],
  summary: ["", "_sum", "_count"],
};

/**
 * Parses the Prometheus text exposition (format 0.0.4) into families, keyed by name. Strict: a
 * line that is not a comment or a sample, a sample before its `# TYPE`, or a sample whose name
 * does not belong to the family above it throws, so a malformed `/metrics` fails the test.
 */
export function parseExposition(text: string): Map<string, MetricFamily> {
  const families = new Map<string, MetricFamily>();
  let current: MetricFamily | undefined;
  const helps = new Map<string, string>();
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const help = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (help) {
      helps.set(help[1]!, help[2]!);
      continue;
    }
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      if (families.has(type[1]!)) throw new Error(`metric family ${type[1]} declared twice`);
      current = { name: type[1]!, type: type[2] as MetricFamily["type"], help: helps.get(type[1]!) ?? "", samples: [] };
      families.set(current.name, current);
      continue;
    }
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const name = m[1]!;
    if (!current || !SUFFIXES[current.type].some((s) => current!.name + s === name)) {
      throw new Error(`sample ${name} does not belong to the family declared above it (${current?.name ?? "none"})`);
    }
    const labels: Record<string, string> = {};
    const body = m[2] ?? "";
    const pair = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)/y;
    for (let at = 0; at < body.length; ) {
      pair.lastIndex = at;
      const p = pair.exec(body);
      if (!p) throw new Error(`bad labels in ${line}`);
      if (p[1]! in labels) throw new Error(`label ${p[1]} repeated in ${line}`);
      labels[p[1]!] = p[2]!.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
      at = pair.lastIndex;
    }
    // Prometheus reads the special values case-insensitively, and prom-client writes NaN as `Nan`
    // (an event-loop lag mean before its first sample, for one).
    const raw = m[3]!;
    const value = /^\+?inf$/i.test(raw) ? Infinity : /^-inf$/i.test(raw) ? -Infinity : /^nan$/i.test(raw) ? NaN : Number(raw);
    if (Number.isNaN(value) && !/^nan$/i.test(raw)) throw new Error(`bad value in ${line}`);
    current.samples.push({ name, labels, value });
  }
  return families;
}
