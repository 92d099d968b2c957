/**
 * The Kubernetes manifests (deploy/kubernetes) checked against the apps themselves.
 *
 * `renderKustomization` renders a kustomization the way `kustomize build` does for the fields
 * these manifests use (resources, namespace, labels, replicas, images, patches of whole-object
 * fragments merged by kind and name); any other field fails, so the manifests cannot grow a
 * feature this rendering silently ignores.
 *
 * `checkManifests` returns every problem it finds, as sentences naming the app and the variable:
 * each container's environment is resolved (ConfigMap keys, Secret references, files in mounted
 * Secret volumes — written to a scratch folder with real material) and handed to the app's own
 * configuration reader with the image's `NODE_ENV=production`, which must accept it; every
 * variable the manifest sets must be one the reader read. Ports, probes, Services, disruption
 * budgets, the security context, resources, and the absence of any secret value are checked too.
 */
import { mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { randomBytes } from "node:crypto";
import { parseAllDocuments } from "yaml";
import type { ImageRuntime } from "./image.js";

/** One Kubernetes object, as parsed. */
export type K8sObject = { kind: string; apiVersion: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> } } & Record<string, unknown>;

const KUSTOMIZE_FIELDS = new Set(["apiVersion", "kind", "namespace", "labels", "resources", "replicas", "images", "patches"]);

/** Every object of a YAML file with `---` separated documents. */
export function readYamlObjects(file: string): K8sObject[] {
  return parseAllDocuments(readFileSync(file, "utf8"))
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(`${file}: ${doc.errors[0]!.message}`);
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** Renders the kustomization in `dir` (see the module comment for what is understood). */
export function renderKustomization(dir: string): K8sObject[] {
  const [k] = readYamlObjects(join(dir, "kustomization.yaml")) as unknown as Array<Record<string, unknown>>;
  if (!k) throw new Error(`${dir}: empty kustomization`);
  for (const key of Object.keys(k)) if (!KUSTOMIZE_FIELDS.has(key)) throw new Error(`${dir}/kustomization.yaml: field ${key} is not understood by this check`);
  const objects: K8sObject[] = [];
  for (const resource of (k.resources as string[] | undefined) ?? []) {
    const path = join(dir, resource);
    objects.push(...(statSync(path).isDirectory() ? renderKustomization(path) : readYamlObjects(path)));
  }
  for (const { path } of (k.patches as Array<{ path: string }> | undefined) ?? []) {
    for (const patch of readYamlObjects(join(dir, path))) {
      const target = objects.find((o) => o.kind === patch.kind && o.metadata.name === patch.metadata.name);
      if (!target) throw new Error(`${dir}/${path}: patches ${patch.kind}/${patch.metadata.name}, which no resource defines`);
      merge(target, patch);
    }
  }
  for (const { name, count } of (k.replicas as Array<{ name: string; count: number }> | undefined) ?? []) {
    const target = objects.find((o) => o.kind === "Deployment" && o.metadata.name === name);
    if (!target) throw new Error(`${dir}/kustomization.yaml: replicas for ${name}, which is no Deployment`);
    (target.spec as Record<string, unknown>).replicas = count;
  }
  for (const image of (k.images as Array<{ name: string; newName?: string; newTag?: string }> | undefined) ?? []) {
    let used = false;
    for (const c of objects.flatMap(containersOf)) {
      const [name, tag] = c.image.split(":");
      if (name !== image.name) continue;
      used = true;
      c.image = `${image.newName ?? name}:${image.newTag ?? tag ?? "latest"}`;
    }
    if (!used) throw new Error(`${dir}/kustomization.yaml: image ${image.name} is used by no container`);
  }
  for (const { pairs } of (k.labels as Array<{ pairs: Record<string, string> }> | undefined) ?? []) {
    for (const o of objects) o.metadata.labels = { ...o.metadata.labels, ...pairs };
  }
  if (typeof k.namespace === "string") for (const o of objects) o.metadata.namespace = k.namespace;
  return objects;
}

/** Maps merge key by key; anything else is replaced. */
function merge(target: Record<string, unknown>, patch: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(patch)) {
    const current = target[key];
    if (isMap(current) && isMap(value)) merge(current, value);
    else target[key] = value;
  }
}
const isMap = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

interface Container {
  name: string;
  image: string;
  args?: string[];
  command?: string[];
  env?: Array<{ name: string; value?: unknown; valueFrom?: Record<string, Record<string, string>> }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; capabilities?: { drop?: string[] } };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}
interface Probe {
  grpc?: { port: number | string; service?: string };
  httpGet?: { path: string; port: number | string };
}
interface PodSpec {
  containers: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
  volumes?: Array<{ name: string; secret?: { secretName: string }; emptyDir?: unknown; configMap?: unknown }>;
}

function podOf(o: K8sObject): PodSpec | undefined {
  if (o.kind !== "Deployment") return undefined;
  return ((o.spec as { template?: { spec?: PodSpec } }).template?.spec) ?? undefined;
}
function containersOf(o: K8sObject): Container[] {
  return podOf(o)?.containers ?? [];
}
function templateLabels(o: K8sObject): Record<string, string> {
  return (o.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata.labels;
}
const selects = (selector: Record<string, string> | undefined, labels: Record<string, string>) =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v);

/** What the check needs besides the manifests. */
export interface ManifestContext {
  /** Each app's configuration reader (`read<App>Config(env)`), by app name. */
  readonly readers: Readonly<Record<string, (env: NodeJS.ProcessEnv) => Promise<unknown>>>;
  /** The image's runtime (its ENV lines are the container's starting environment). */
  readonly image: ImageRuntime;
  /** Where mounted files are written, one folder per container. */
  readonly scratch: string;
  /** Real TLS material for an app, for the files its TLS_* variables name. */
  tlsFor(app: string, trustDomain: string): Promise<{ certPem: string; keyPem: string; caPem: string }>;
  /** Apps that must run at least two replicas (the production base). */
  readonly replicated?: readonly string[];
}

/** Test values for what the manifests take from Secrets by key: never real, but well-formed. */
const SECRET_KEY_VALUES: Readonly<Record<string, string>> = {
  DATABASE_URL: "postgres://lcp@postgres.example:5432/lcp",
};
/** Variables whose value is a secret: these must come from a Secret, never a literal (`…_FILE` names a mounted file instead). */
const SECRET_VARIABLE = /^(KEK|DATABASE_URL|OIDC_CLIENT_SECRET|SESSION_KEY)$|SECRET|PASSWORD|PRIVATE|TOKEN_KEY/;
/** Secret-looking text anywhere in a manifest. */
const SECRET_TEXT: ReadonlyArray<[RegExp, string]> = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
  [/-----BEGIN CERTIFICATE-----/, "a certificate"],
  [/^[a-z][a-z0-9+.-]*:\/\/[^/\s:@]+:[^/\s@]+@/i, "a URL with a password"],
];

/** All problems found; empty when the manifests and the apps agree. */
export async function checkManifests(objects: readonly K8sObject[], ctx: ManifestContext): Promise<string[]> {
  const problems: string[] = [];
  const walk = (value: unknown, where: string) => {
    if (typeof value === "string") {
      for (const [pattern, what] of SECRET_TEXT) if (pattern.test(value)) problems.push(`${where} holds ${what}`);
    } else if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${where}[${i}]`));
    else if (isMap(value)) for (const [k, v] of Object.entries(value)) walk(v, `${where}.${k}`);
  };
  for (const o of objects) {
    walk(o, `${o.kind}/${o.metadata.name}`);
    if (o.kind === "Secret") problems.push(`Secret/${o.metadata.name} is defined in the manifests; create Secrets outside them and reference them`);
  }

  const configMaps = new Map(objects.filter((o) => o.kind === "ConfigMap").map((o) => [o.metadata.name, (o.data ?? {}) as Record<string, string>]));
  const services = objects.filter((o) => o.kind === "Service");
  const deployments = objects.filter((o) => o.kind === "Deployment");

  for (const d of deployments) {
    const pod = podOf(d)!;
    const name = d.metadata.name;
    const replicas = (d.spec as { replicas?: number }).replicas ?? 1;
    if (ctx.replicated?.includes(name) && replicas < 2) problems.push(`${name}: ${replicas} replica; at least 2 are needed to survive a node`);
    if (pod.securityContext?.runAsNonRoot !== true) problems.push(`${name}: the pod must set runAsNonRoot`);
    if (!objects.some((o) => o.kind === "PodDisruptionBudget" && selects((o.spec as { selector?: { matchLabels?: Record<string, string> } }).selector?.matchLabels, templateLabels(d)))) {
      problems.push(`${name}: no PodDisruptionBudget selects it`);
    }
    for (const c of pod.containers) problems.push(...(await checkContainer(name, c, pod, configMaps, services, ctx)));
  }
  for (const s of services) {
    const selector = (s.spec as { selector?: Record<string, string> }).selector;
    const target = deployments.find((d) => selects(selector, templateLabels(d)));
    if (!target) {
      problems.push(`Service/${s.metadata.name} selects no Deployment`);
      continue;
    }
    const ports = containersOf(target).flatMap((c) => c.ports ?? []);
    for (const p of (s.spec as { ports: Array<{ port: number; targetPort?: number | string }> }).ports) {
      const t = p.targetPort ?? p.port;
      if (!ports.some((cp) => cp.name === t || cp.containerPort === t)) problems.push(`Service/${s.metadata.name}: targetPort ${t} is no port of ${target.metadata.name}`);
    }
  }
  return problems;
}

async function checkContainer(
  deployment: string,
  c: Container,
  pod: PodSpec,
  configMaps: ReadonlyMap<string, Record<string, string>>,
  services: readonly K8sObject[],
  ctx: ManifestContext,
): Promise<string[]> {
  const problems: string[] = [];
  const say = (text: string) => problems.push(`${deployment}: ${text}`);
  const script = /^apps\/([\w-]+)\/dist\/main\.js$/.exec((c.command ? [] : (c.args ?? ctx.image.cmd))[0] ?? "");
  if (c.command) say("sets command; the image's ENTRYPOINT runs node, the app goes in args");
  const app = script?.[1];
  const reader = app === undefined ? undefined : ctx.readers[app];
  if (!reader) {
    say(`args ${JSON.stringify(c.args)} start no app (expected ["apps/<app>/dist/main.js"])`);
    return problems;
  }

  // Security context and resources.
  if (c.securityContext?.allowPrivilegeEscalation !== false) say("allowPrivilegeEscalation must be false");
  if (c.securityContext?.readOnlyRootFilesystem !== true) say("readOnlyRootFilesystem must be true");
  if (!c.securityContext?.capabilities?.drop?.includes("ALL")) say("capabilities must drop ALL");
  for (const kind of ["requests", "limits"] as const) for (const r of ["cpu", "memory"]) if (c.resources?.[kind]?.[r] === undefined) say(`no ${r} ${kind.slice(0, -1)}`);

  // The environment, resolved as the kubelet would, with mounted files written for real.
  const mounts = (c.volumeMounts ?? []).map((m) => ({ ...m, volume: pod.volumes?.find((v) => v.name === m.name) }));
  const root = join(ctx.scratch, deployment);
  const trustDomain = [...configMaps.values()].find((d) => d.TRUST_DOMAIN)?.TRUST_DOMAIN ?? "lcp.local";
  const tls = await ctx.tlsFor(app!, trustDomain);
  const env: Record<string, string> = { ...ctx.image.env };
  const local = (path: string) => join(root, path);
  for (const mount of mounts) {
    if (!mount.volume) say(`mounts volume ${mount.name}, which the pod does not define`);
    if (mount.volume?.emptyDir !== undefined) mkdirSync(local(mount.mountPath), { recursive: true });
  }
  const fileContent: Record<string, () => string> = {
    TLS_CERT_FILE: () => tls.certPem,
    TLS_KEY_FILE: () => tls.keyPem,
    TLS_CA_FILE: () => tls.caPem,
    OIDC_CA_FILE: () => tls.caPem,
    TLS_TICKET_KEY_FILE: () => randomBytes(48).toString("base64"),
    KEK_FILE: () => randomBytes(32).toString("base64"),
    SESSION_KEY_FILE: () => randomBytes(32).toString("base64"),
    OIDC_CLIENT_SECRET_FILE: () => "test-client-secret",
  };
  for (const e of c.env ?? []) {
    let value: string | undefined;
    if (e.value !== undefined) {
      if (typeof e.value !== "string") say(`${e.name} is ${JSON.stringify(e.value)}: quote it (env values are strings)`);
      value = String(e.value);
      if (SECRET_VARIABLE.test(e.name) && !e.name.endsWith("_FILE")) say(`${e.name} is set inline; take it from a Secret (secretKeyRef or a mounted file)`);
    } else if (e.valueFrom?.configMapKeyRef) {
      const { name, key } = e.valueFrom.configMapKeyRef as { name: string; key: string };
      value = configMaps.get(name)?.[key];
      if (value === undefined) say(`${e.name} refers to ConfigMap ${name} key ${key}, which does not exist`);
    } else if (e.valueFrom?.secretKeyRef) {
      value = SECRET_KEY_VALUES[e.name];
      if (value === undefined) say(`${e.name} comes from a Secret key; this check has no test value for it`);
    } else if (e.valueFrom?.fieldRef) value = `${deployment}-0`;
    else say(`${e.name} has no value`);
    if (value === undefined) continue;
    if (value.startsWith("/")) {
      const mount = mounts.find((m) => value === m.mountPath || value!.startsWith(`${m.mountPath}/`));
      if (!mount) say(`${e.name}=${value} is on no mounted volume`);
      else if (mount.volume?.secret && fileContent[e.name]) {
        const file = local(value);
        mkdirSync(dirname(file), { recursive: true });
        writeFileSync(file, fileContent[e.name]!(), { mode: 0o600 });
      }
      value = local(value);
    }
    const url = /^https:\/\/([a-z0-9-]+):(\d+)$/.exec(value);
    if (url && !services.some((s) => s.metadata.name === url[1] && (s.spec as { ports: Array<{ port: number }> }).ports.some((p) => p.port === Number(url[2])))) {
      say(`${e.name}=${value} names no Service port`);
    }
    env[e.name] = value;
  }
  if (env.DATA_DIR?.startsWith("/")) {
    const onVolume = mounts.some((m) => m.volume?.emptyDir !== undefined && (env.DATA_DIR === m.mountPath || env.DATA_DIR!.startsWith(`${m.mountPath}/`)));
    if (!onVolume) say(`DATA_DIR=${env.DATA_DIR} is on the read-only root filesystem; mount an emptyDir there`);
    env.DATA_DIR = local(env.DATA_DIR);
    mkdirSync(env.DATA_DIR, { recursive: true });
  }

  // The app's own reader, in production mode: it must accept this environment, and read all of it.
  const read = new Set<string>();
  const watched = new Proxy(env, {
    get(target, key) {
      if (typeof key === "string") read.add(key);
      return target[key as string];
    },
  });
  try {
    await reader(watched);
  } catch (err) {
    say(`its configuration is refused: ${(err as Error).message}`);
  }
  for (const e of c.env ?? []) if (!read.has(e.name)) say(`sets ${e.name}, which ${app} never reads`);

  // Ports and probes: PORT and ADMIN_PORT are the container's ports; kubelet asks the admin port.
  const portNamed = (n: number | string) => (typeof n === "number" ? n : c.ports?.find((p) => p.name === n)?.containerPort);
  const servicePort = c.ports?.find((p) => p.name === "grpc" || p.name === "https");
  if (!servicePort || String(servicePort.containerPort) !== env.PORT) say(`PORT=${env.PORT} is not its grpc/https container port (${servicePort?.containerPort})`);
  const admin = c.ports?.find((p) => p.name === "admin");
  if (!admin || String(admin.containerPort) !== env.ADMIN_PORT) say(`ADMIN_PORT=${env.ADMIN_PORT} is not its admin container port (${admin?.containerPort})`);
  for (const [kind, probe] of [["readiness", c.readinessProbe], ["startup", c.startupProbe]] as const) {
    if (!probe?.grpc || portNamed(probe.grpc.port) !== admin?.containerPort) say(`the ${kind} probe must be gRPC health on the admin port`);
  }
  const live = c.livenessProbe?.httpGet;
  if (!live || live.path !== "/healthz" || portNamed(live.port) !== admin?.containerPort) say("the liveness probe must be GET /healthz on the admin port (not readiness: a database outage must not restart pods)");
  return problems;
}
