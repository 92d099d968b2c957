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
