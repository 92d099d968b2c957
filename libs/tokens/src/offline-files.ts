/**
 * The files an air-gapped box and the control plane exchange (docs/design.md §15), carried by an
 * operator across the gap. Each is one compact JWS — a single line of text, small enough to mail,
 * paste or print — and each kind has its own `typ`, so no file can pass for another or for a
 * licence or lease token.
 *
 * Requests are written by the box and signed by the box's own P-256 key (ES256):
 * - an activation request embeds that key as the header's `jwk` (proof of possession: the
 *   control plane checks it is the key of the CSR inside);
 * - a renewal request carries the box's certificate and is signed by its key (the control plane
 *   checks the certificate is one it issued to that deployment and has not revoked).
 *
 * Responses are written by licensing and signed with its own service key, with the certificate
 * chain in `x5c`. The box checks that chain against the control plane CA it was shipped with —
 * the same anchor an online box's TLS connection has — because before its first answer a box
 * holds no JWKS, and a JWKS inside an answer cannot vouch for itself. The lease inside is an
 * ordinary lease token, signed by signing-keys and verified against the JWKS the answer carries.
 * A response is bound to its request's nonce and the box's fingerprint hash; the box accepts only
 * the answer to the request it is still waiting for, and only a lease newer than the one it holds.
 *
 * Every reader here bounds its input before parsing it: a file is at most 16 KiB and each field
 * has a length limit, so a hostile file costs one bounded parse and is refused with a code.
 */
import { X509Certificate, createPrivateKey, createPublicKey, randomBytes, type JsonWebKey, type KeyObject } from "node:crypto";
import { CompactSign, compactVerify, decodeProtectedHeader, errors, type JWK, type JSONWebKeySet } from "jose";
import { parseCertificateBundle } from "./trusting-fetch.js";

/** The format version every file carries as `v`; a reader refuses any other. */
export const OFFLINE_FILE_VERSION = 1;

/** The `typ` of each file kind. */
export const OFFLINE_FILE_TYPES = {
  activationRequest: "activation-request+jwt",
  renewalRequest: "renewal-request+jwt",
  activationResponse: "activation-response+jwt",
  renewalResponse: "renewal-response+jwt",
} as const;

/** A file kind. */
export type OfflineFileKind = keyof typeof OFFLINE_FILE_TYPES;

/** The largest file accepted, in bytes (a response is about 5 KiB). */
export const MAX_OFFLINE_FILE_BYTES = 16 * 1024;

/** How long a response may wait to be imported on its box. */
export const OFFLINE_RESPONSE_VALIDITY_MS = 30 * 86_400_000;

const MAX_PEM_CHARS = 8 * 1024;
const MAX_TOKEN_CHARS = 8 * 1024;
const MAX_ID_CHARS = 128;
const MAX_AGENT_VERSION_CHARS = 128;
const MAX_CHAIN_CERTIFICATES = 4;
const MAX_USAGE_ENTRIES = 32;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;
const FINGERPRINT_HASH_RE = /^[0-9a-f]{64}$/;
const NONCE_RE = /^[A-Za-z0-9_-]{22,64}$/;
const USAGE_NAME_RE = /^[a-z][a-z0-9_.]{0,63}$/;
const PRINTABLE_RE = /^[\x20-\x7e]*$/;

/** Why a file was refused. */
export type OfflineFileRefusalCode =
  /** Not a compact JWS, too large, or not JSON where JSON belongs. */
  | "FILE_MALFORMED"
  /** A file of another kind (or another format version). */
  | "FILE_WRONG_KIND"
  /** The signature does not verify (tampered, or signed by another key). */
  | "FILE_BAD_SIGNATURE"
  /** A response signed by a certificate that does not chain to the control plane CA, or not licensing's. */
  | "FILE_UNTRUSTED_SIGNER"
  /** A response past its import deadline, or signed by a certificate outside its validity. */
  | "FILE_EXPIRED"
  /** A claim is missing, out of bounds or of the wrong shape. */
  | "FILE_CLAIMS_INVALID";

/** A refused file: a code to switch on and a message safe to show whoever carried it. */
export interface OfflineFileRefusal {
  readonly ok: false;
  readonly code: OfflineFileRefusalCode;
  readonly message: string;
}

/** A verdict on a file. */
export type OfflineFileVerdict<T> = { readonly ok: true; readonly claims: T } | OfflineFileRefusal;

function refuse(code: OfflineFileRefusalCode, message: string): OfflineFileRefusal {
  return { ok: false, code, message };
}

/** A new request nonce: 16 random bytes, base64url. */
export function newOfflineNonce(): string {
  return randomBytes(16).toString("base64url");
}

// ---------------------------------------------------------------------------------------------
// Claims

/** What an activation request says (`activation-request+jwt`). */
export interface ActivationRequestClaims {
  readonly v: typeof OFFLINE_FILE_VERSION;
  /** The licence id. */
  readonly lic: string;
  /** The licence token the box was shipped with. */
  readonly tok: string;
  /** SHA-256 (hex) of the box's hardware fingerprint: the raw fingerprint never leaves the box. */
  readonly fph: string;
  /** PEM PKCS#10 CSR for the box's SPIFFE id, of the key that signed the request. */
  readonly csr: string;
  /** The nonce the response must echo. */
  readonly nce: string;
  /** The box's clock when it wrote the request (seconds); informational, never trusted. */
  readonly iat: number;
  readonly agv?: string;
}

/** Counters the box reports with a renewal (name → non-negative integer), for the audit trail. */
export type UsageSummary = Readonly<Record<string, number>>;

/** What a renewal request says (`renewal-request+jwt`). */
export interface RenewalRequestClaims {
  readonly v: typeof OFFLINE_FILE_VERSION;
  readonly lic: string;
  readonly dep: string;
  readonly fph: string;
  /** The highest lease seq the box holds. */
  readonly seq: number;
  /** The box's client certificate (PEM), whose key signed the request. */
  readonly crt: string;
  readonly nce: string;
  readonly iat: number;
  readonly use: UsageSummary;
  readonly agv?: string;
}

/** The box's runtime settings in an activation response (milliseconds). */
export interface OfflineApplianceSettings {
  readonly heartbeatIntervalMs: number;
  readonly graceWindowMs: number;
  readonly maxClockSkewMs: number;
}

/** The state a response puts the box in. */
export type OfflineAnswerState = "ACTIVE" | "SUSPENDED" | "LOCKED";

/** Why a response locks the box. */
export type OfflineLockReason = "REVOKED" | "EXPIRED" | "REBOUND";

/** What both responses say. */
export interface OfflineResponseClaims {
  readonly v: typeof OFFLINE_FILE_VERSION;
  readonly iss: string;
  /** The licence id. */
  readonly sub: string;
  readonly dep: string;
  /** The fingerprint hash of the box it is for. */
  readonly fph: string;
  /** The nonce of the request it answers. */
  readonly nce: string;
  readonly st: OfflineAnswerState;
  /** Set when `st` is LOCKED. */
  readonly rsn?: OfflineLockReason;
  /** The lease (typ lease+jwt); absent when `st` is LOCKED. */
  readonly lse?: string;
  /** The JWKS that verifies the lease and the box's later leases. */
  readonly jwks: JSONWebKeySet;
  /** When the box should ask for its next lease (seconds); absent when LOCKED. */
  readonly ren?: number;
  readonly iat: number;
  /** Import deadline (seconds). */
  readonly exp: number;
}

/** What an activation response adds (`activation-response+jwt`). */
export interface ActivationResponseClaims extends OfflineResponseClaims {
  /** The box's client certificate and its chain (PEM). */
  readonly crt: string;
  readonly chn: readonly string[];
  readonly set: OfflineApplianceSettings;
}

/** A renewal response (`renewal-response+jwt`). */
export type RenewalResponseClaims = OfflineResponseClaims;

// ---------------------------------------------------------------------------------------------
// Shape checks, one per field kind; each returns a message or null.

type Check = (value: unknown) => string | null;

const str =
  (max: number, re?: RegExp): Check =>
  (value) =>
    typeof value !== "string" || value.length === 0
      ? "must be a non-empty string"
      : value.length > max
        ? `must be at most ${max} characters`
        : re && !re.test(value)
          ? "has characters that are not allowed"
          : null;

const int: Check = (value) => (typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? null : "must be a non-negative integer");
const pem: Check = (value) => str(MAX_PEM_CHARS)(value) ?? (typeof value === "string" && value.startsWith("-----BEGIN ") ? null : "must be PEM");
const optional =
  (check: Check): Check =>
  (value) =>
    value === undefined ? null : check(value);

function usage(value: unknown): string | null {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "must be an object of counters";
  const entries = Object.entries(value);
  if (entries.length > MAX_USAGE_ENTRIES) return `must have at most ${MAX_USAGE_ENTRIES} counters`;
  for (const [name, count] of entries) {
    if (!USAGE_NAME_RE.test(name)) return `has a counter name that is not allowed (${JSON.stringify(name.slice(0, 64))})`;
    if (int(count)) return `counter ${name} must be a non-negative integer`;
  }
  return null;
}

function jwks(value: unknown): string | null {
  if (typeof value !== "object" || value === null) return "must be a JWKS";
  const keys = (value as { keys?: unknown }).keys;
  if (!Array.isArray(keys) || keys.length === 0 || keys.length > 32) return "must be a JWKS of 1 to 32 keys";
  return keys.every((k) => typeof k === "object" && k !== null && typeof (k as JWK).kid === "string" && !("d" in k)) ? null : "must hold public keys with a kid";
}

function settings(value: unknown): string | null {
  if (typeof value !== "object" || value === null) return "must be an object";
  const s = value as Record<string, unknown>;
  for (const name of ["heartbeatIntervalMs", "graceWindowMs", "maxClockSkewMs"]) if (int(s[name])) return `${name} must be a non-negative integer`;
  return null;
}

function chain(value: unknown): string | null {
  if (!Array.isArray(value) || value.length > MAX_CHAIN_CERTIFICATES) return `must be a list of at most ${MAX_CHAIN_CERTIFICATES} certificates`;
  for (const item of value) if (pem(item)) return "must hold PEM certificates";
  return null;
}

const oneOf =
  (values: readonly string[]): Check =>
  (value) =>
    typeof value === "string" && values.includes(value) ? null : `must be one of ${values.join(", ")}`;

const REQUEST_FIELDS = {
  lic: str(MAX_ID_CHARS, ID_RE),
  fph: str(64, FINGERPRINT_HASH_RE),
  nce: str(64, NONCE_RE),
  iat: int,
  agv: optional(str(MAX_AGENT_VERSION_CHARS, PRINTABLE_RE)),
};

const RESPONSE_FIELDS: Record<string, Check> = {
  iss: str(512),
  sub: str(MAX_ID_CHARS, ID_RE),
  dep: str(MAX_ID_CHARS, ID_RE),
  fph: str(64, FINGERPRINT_HASH_RE),
  nce: str(64, NONCE_RE),
  st: oneOf(["ACTIVE", "SUSPENDED", "LOCKED"]),
  rsn: optional(oneOf(["REVOKED", "EXPIRED", "REBOUND"])),
  lse: optional(str(MAX_TOKEN_CHARS, /^[A-Za-z0-9_.-]+$/)),
  jwks,
  ren: optional(int),
  iat: int,
  exp: int,
};
const SHAPES: Record<OfflineFileKind, Record<string, Check>> = {
  activationRequest: { ...REQUEST_FIELDS, tok: str(MAX_TOKEN_CHARS, /^[A-Za-z0-9_.-]+$/), csr: pem },
  renewalRequest: { ...REQUEST_FIELDS, dep: str(MAX_ID_CHARS, ID_RE), seq: int, crt: pem, use: usage },
  activationResponse: { ...RESPONSE_FIELDS, crt: pem, chn: chain, set: settings },
  renewalResponse: RESPONSE_FIELDS,
};

function checkClaims<T>(kind: OfflineFileKind, payload: Record<string, unknown>): OfflineFileVerdict<T> {
  if (payload["v"] !== OFFLINE_FILE_VERSION) {
    return refuse("FILE_WRONG_KIND", `file format version ${JSON.stringify(payload["v"])} is not supported (this reader knows ${OFFLINE_FILE_VERSION})`);
  }
  for (const [name, check] of Object.entries(SHAPES[kind])) {
    const problem = check(payload[name]);
    if (problem) return refuse("FILE_CLAIMS_INVALID", `${name} ${problem}`);
  }
  if (kind === "activationResponse" || kind === "renewalResponse") {
    const locked = payload["st"] === "LOCKED";
    if (locked !== (payload["rsn"] !== undefined)) return refuse("FILE_CLAIMS_INVALID", "rsn must be set exactly when st is LOCKED");
    if (locked === (payload["lse"] !== undefined)) return refuse("FILE_CLAIMS_INVALID", "lse must be set exactly when st is not LOCKED");
  }
  return { ok: true, claims: payload as T };
}

// ---------------------------------------------------------------------------------------------
// Reading the envelope

interface Envelope {
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
}

/** Splits and bounds a file, and checks its `typ`, without verifying anything. */
function open(file: unknown, kind: OfflineFileKind): Envelope | OfflineFileRefusal {
  if (typeof file !== "string") return refuse("FILE_MALFORMED", "the file is not text");
  const text = file.trim();
  if (Buffer.byteLength(text, "utf8") > MAX_OFFLINE_FILE_BYTES) return refuse("FILE_MALFORMED", `the file is larger than ${MAX_OFFLINE_FILE_BYTES} bytes`);
  const parts = text.split(".");
  if (parts.length !== 3 || !parts.every((p) => /^[A-Za-z0-9_-]+$/.test(p))) return refuse("FILE_MALFORMED", "the file is not a compact JWS");
  let header: unknown;
  let payload: unknown;
  try {
    header = decodeProtectedHeader(text);
    payload = JSON.parse(Buffer.from(parts[1]!, "base64url").toString("utf8"));
  } catch {
    return refuse("FILE_MALFORMED", "the file's header or payload is not JSON");
  }
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return refuse("FILE_MALFORMED", "the file's payload is not a JSON object");
  const typ = (header as Record<string, unknown>)["typ"];
  if (typ !== OFFLINE_FILE_TYPES[kind]) {
    const known = Object.entries(OFFLINE_FILE_TYPES).find(([, t]) => t === typ)?.[0];
    return refuse("FILE_WRONG_KIND", known ? `this is ${describe(known as OfflineFileKind)}, not ${describe(kind)}` : `this is not ${describe(kind)}`);
  }
  return { header: header as Record<string, unknown>, payload: payload as Record<string, unknown> };
}

/** An article and a name for a file kind, for messages. */
function describe(kind: OfflineFileKind): string {
  return { activationRequest: "an activation request", renewalRequest: "a renewal request", activationResponse: "an activation response", renewalResponse: "a renewal response" }[kind];
}

function isRefusal(value: unknown): value is OfflineFileRefusal {
  return typeof value === "object" && value !== null && (value as { ok?: unknown }).ok === false;
}

/** The JWS algorithm for a key: ES256/ES384 for P-256/P-384, EdDSA for Ed25519. */
function algorithmOf(key: KeyObject): "ES256" | "ES384" | "EdDSA" | null {
  if (key.asymmetricKeyType === "ed25519") return "EdDSA";
  if (key.asymmetricKeyType !== "ec") return null;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  return curve === "prime256v1" ? "ES256" : curve === "secp384r1" ? "ES384" : null;
}

async function verifySignature(file: string, key: KeyObject, alg: string): Promise<OfflineFileRefusal | null> {
  try {
    await compactVerify(file.trim(), key, { algorithms: [alg] });
    return null;
  } catch (error) {
    if (error instanceof errors.JOSEError) return refuse("FILE_BAD_SIGNATURE", "the file's signature does not verify");
    throw error;
  }
}

async function signCompact(header: Record<string, unknown>, payload: Record<string, unknown>, key: KeyObject): Promise<string> {
  return new CompactSign(Buffer.from(JSON.stringify(payload), "utf8")).setProtectedHeader(header as { alg: string }).sign(key);
}

// ---------------------------------------------------------------------------------------------
// Requests (the box writes, the control plane reads)

/** The public JWK of a private key, without anything private. */
function publicJwkOf(key: KeyObject): JWK {
  const { kty, crv, x, y } = createPublicKey(key).export({ format: "jwk" });
  return y === undefined ? { kty, crv, x } : { kty, crv, x, y };
}

/** What the box puts in an activation request. */
export type ActivationRequestInput = Omit<ActivationRequestClaims, "v" | "iat"> & { readonly boxTime: Date };

/**
 * Signs a request of `kind` with the box's P-256 key (PKCS#8 PEM), refusing to write what a reader
 * would refuse; an activation request carries the public key in its header (`jwk`).
 */
async function signRequest(kind: "activationRequest" | "renewalRequest", input: { readonly privateKeyPem: string; readonly boxTime: Date }): Promise<string> {
  const key = createPrivateKey(input.privateKeyPem);
  const alg = algorithmOf(key);
  if (alg !== "ES256") throw new TypeError(`${describe(kind)} is signed with a P-256 key`);
  const { privateKeyPem: _, boxTime, ...claims } = input;
  const payload = { v: OFFLINE_FILE_VERSION, ...claims, iat: Math.floor(boxTime.getTime() / 1000) };
  const problem = checkClaims(kind, payload);
  if (!problem.ok) throw new TypeError(problem.message);
  const header = { alg, typ: OFFLINE_FILE_TYPES[kind], ...(kind === "activationRequest" ? { jwk: publicJwkOf(key) } : {}) };
  return signCompact(header, payload, key);
}

/** Writes an activation request, signed by the key of its CSR (PKCS#8 PEM, P-256). */
export function signActivationRequest(input: ActivationRequestInput & { readonly privateKeyPem: string }): Promise<string> {
  return signRequest("activationRequest", input);
}

/** A verified activation request and the public key that signed it (to compare with its CSR's). */
export interface VerifiedActivationRequest {
  readonly ok: true;
  readonly claims: ActivationRequestClaims;
  readonly publicKey: KeyObject;
}

/**
 * Reads an activation request: bounded, the right kind, signed (ES256) by the key in its header.
 * Whether that key is the CSR's, and everything about the licence, is the caller's to check.
 */
export async function verifyActivationRequest(file: unknown): Promise<VerifiedActivationRequest | OfflineFileRefusal> {
  const env = open(file, "activationRequest");
  if (isRefusal(env)) return env;
  const jwk = env.header["jwk"];
  if (env.header["alg"] !== "ES256") return refuse("FILE_BAD_SIGNATURE", "an activation request must be signed with ES256");
  if (typeof jwk !== "object" || jwk === null || "d" in jwk) return refuse("FILE_MALFORMED", "the request's header has no public jwk");
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: jwk as JsonWebKey, format: "jwk" });
  } catch {
    return refuse("FILE_MALFORMED", "the request's jwk is not a usable public key");
  }
  if (algorithmOf(publicKey) !== "ES256") return refuse("FILE_MALFORMED", "the request's jwk is not a P-256 key");
  const bad = await verifySignature(file as string, publicKey, "ES256");
  if (bad) return bad;
  const verdict = checkClaims<ActivationRequestClaims>("activationRequest", env.payload);
  return verdict.ok ? { ok: true, claims: verdict.claims, publicKey } : verdict;
}

/** What the box puts in a renewal request. */
export type RenewalRequestInput = Omit<RenewalRequestClaims, "v" | "iat"> & { readonly boxTime: Date };

/** Writes a renewal request, signed by the key of the box's certificate (PKCS#8 PEM, P-256). */
export function signRenewalRequest(input: RenewalRequestInput & { readonly privateKeyPem: string }): Promise<string> {
  return signRequest("renewalRequest", input);
}

/** A verified renewal request and the certificate whose key signed it. */
export interface VerifiedRenewalRequest {
  readonly ok: true;
  readonly claims: RenewalRequestClaims;
  readonly certificate: X509Certificate;
}

/**
 * Reads a renewal request: bounded, the right kind, signed (ES256) by the key of the certificate
 * it carries. Whether that certificate is one the control plane issued to the deployment (and
 * has not revoked) is the caller's to check.
 */
export async function verifyRenewalRequest(file: unknown): Promise<VerifiedRenewalRequest | OfflineFileRefusal> {
  const env = open(file, "renewalRequest");
  if (isRefusal(env)) return env;
  if (env.header["alg"] !== "ES256") return refuse("FILE_BAD_SIGNATURE", "a renewal request must be signed with ES256");
  const crt = env.payload["crt"];
  if (pem(crt)) return refuse("FILE_CLAIMS_INVALID", "crt must be the box's certificate (PEM)");
  let certificate: X509Certificate;
  try {
    certificate = new X509Certificate(crt as string);
  } catch {
    return refuse("FILE_CLAIMS_INVALID", "crt is not a certificate");
  }
  if (algorithmOf(certificate.publicKey) !== "ES256") return refuse("FILE_CLAIMS_INVALID", "crt is not for a P-256 key");
  const bad = await verifySignature(file as string, certificate.publicKey, "ES256");
  if (bad) return bad;
  const verdict = checkClaims<RenewalRequestClaims>("renewalRequest", env.payload);
  return verdict.ok ? { ok: true, claims: verdict.claims, certificate } : verdict;
}

// ---------------------------------------------------------------------------------------------
// Responses (the control plane writes, the box reads)

/** The key and certificate chain that sign responses: licensing's service identity. */
export interface OfflineResponseSigner {
  /** PKCS#8 PEM (P-256, P-384 or Ed25519). */
  readonly privateKeyPem: string;
  /** The certificate of that key first, then its intermediates (the root may be included). */
  readonly certificateChainPem: readonly string[];
}

/** Claims of a response before signing: the signer adds `v`, `iat` and `exp`. */
export type ResponseToSign<T extends OfflineResponseClaims> = Omit<T, "v" | "iat" | "exp">;

/** Writes a response of `kind`, signed with the signer's key and its chain in `x5c`. */
export async function signOfflineResponse<K extends "activationResponse" | "renewalResponse">(
  kind: K,
  claims: ResponseToSign<K extends "activationResponse" ? ActivationResponseClaims : RenewalResponseClaims>,
  signer: OfflineResponseSigner,
  now: Date,
): Promise<string> {
  const key = createPrivateKey(signer.privateKeyPem);
  const alg = algorithmOf(key);
  if (!alg) throw new TypeError("the response signer's key must be P-256, P-384 or Ed25519");
  const x5c = signer.certificateChainPem.map((p) => new X509Certificate(p).raw.toString("base64"));
  const iat = Math.floor(now.getTime() / 1000);
  const payload = { v: OFFLINE_FILE_VERSION, ...claims, iat, exp: iat + Math.floor(OFFLINE_RESPONSE_VALIDITY_MS / 1000) };
  const problem = checkClaims(kind, payload);
  if (!problem.ok) throw new TypeError(problem.message);
  const file = await signCompact({ alg, typ: OFFLINE_FILE_TYPES[kind], x5c }, payload, key);
  if (Buffer.byteLength(file) > MAX_OFFLINE_FILE_BYTES) throw new RangeError(`the response is larger than ${MAX_OFFLINE_FILE_BYTES} bytes`);
  return file;
}

/** What the box trusts a response by. */
export interface OfflineResponseTrust {
  /** The control plane CA bundle (PEM) the box was shipped with. */
  readonly caPem: string;
  /** The URI SAN the signing certificate must carry: licensing's SPIFFE id. */
  readonly signerUri: string;
  /** The token issuer to pin. */
  readonly issuer: string;
  /** The box's clock. */
  readonly now: Date;
  /** Tolerated skew for the deadline and the certificates' validity, in milliseconds. */
  readonly clockToleranceMs: number;
}

/** The x5c chain's certificates (DER), or null when one does not parse. */
function parseCertificates(der: readonly Buffer[]): X509Certificate[] | null {
  try {
    return der.map((c) => new X509Certificate(c));
  } catch {
    return null;
  }
}

/** Checks an x5c chain (leaf first) against the CA bundle, at `now` ± tolerance. */
function checkChain(x5c: unknown, trust: OfflineResponseTrust): { leaf: X509Certificate } | OfflineFileRefusal {
  if (!Array.isArray(x5c) || x5c.length === 0 || x5c.length > MAX_CHAIN_CERTIFICATES || !x5c.every((c) => typeof c === "string" && c.length <= MAX_PEM_CHARS)) {
    return refuse("FILE_UNTRUSTED_SIGNER", "the response carries no usable certificate chain (x5c)");
  }
  const chainCerts = parseCertificates(x5c.map((c: string) => Buffer.from(c, "base64")));
  let anchors: X509Certificate[];
  try {
    anchors = parseCertificateBundle(trust.caPem);
  } catch {
    anchors = [];
  }
  if (!chainCerts || anchors.length === 0) return refuse("FILE_UNTRUSTED_SIGNER", "the response's certificate chain cannot be read");
  const now = trust.now.getTime();
  for (const cert of chainCerts) {
    if (now + trust.clockToleranceMs < Date.parse(cert.validFrom) || now - trust.clockToleranceMs > Date.parse(cert.validTo)) {
      return refuse("FILE_EXPIRED", "the response was signed by a certificate outside its validity");
    }
  }
  // Only CAs issue, and the signer is not one: a service's leaf cannot vouch for another leaf.
  if (chainCerts[0]!.ca || chainCerts.slice(1).some((c) => !c.ca)) {
    return refuse("FILE_UNTRUSTED_SIGNER", "the response's certificate chain does not run from a service certificate up through CAs");
  }
  const issuedBy = (child: X509Certificate, parent: X509Certificate) => parent.ca && child.checkIssued(parent) && child.verify(parent.publicKey);
  let anchored = false;
  for (let i = 0; i < chainCerts.length && !anchored; i++) {
    const cert = chainCerts[i]!;
    if (i > 0 && !issuedBy(chainCerts[i - 1]!, cert)) return refuse("FILE_UNTRUSTED_SIGNER", "the response's certificate chain is broken");
    anchored = anchors.some((a) => a.fingerprint256 === cert.fingerprint256 || issuedBy(cert, a));
  }
  if (!anchored) return refuse("FILE_UNTRUSTED_SIGNER", "the response is not signed by a certificate of this box's control plane");
  const leaf = chainCerts[0]!;
  const uris = (leaf.subjectAltName ?? "").split(/,\s*/).filter((s) => s.startsWith("URI:")).map((s) => s.slice(4));
  if (!uris.includes(trust.signerUri)) return refuse("FILE_UNTRUSTED_SIGNER", `the response is not signed by ${trust.signerUri}`);
  return { leaf };
}

/**
 * Reads a response on the box: bounded, the right kind, signed by a certificate that chains to
 * the box's control plane CA and names licensing, our issuer, before its deadline, well-formed.
 * Binding (nonce, fingerprint), the lease inside and its seq are the caller's to check.
 */
export async function verifyOfflineResponse<K extends "activationResponse" | "renewalResponse">(
  file: unknown,
  kind: K,
  trust: OfflineResponseTrust,
): Promise<OfflineFileVerdict<K extends "activationResponse" ? ActivationResponseClaims : RenewalResponseClaims>> {
  const env = open(file, kind);
  if (isRefusal(env)) return env;
  const chainCheck = checkChain(env.header["x5c"], trust);
  if (isRefusal(chainCheck)) return chainCheck;
  const alg = algorithmOf(chainCheck.leaf.publicKey);
  if (!alg || env.header["alg"] !== alg) return refuse("FILE_BAD_SIGNATURE", "the response's algorithm does not match its certificate");
  const bad = await verifySignature(file as string, chainCheck.leaf.publicKey, alg);
  if (bad) return bad;
  const verdict = checkClaims<K extends "activationResponse" ? ActivationResponseClaims : RenewalResponseClaims>(kind, env.payload);
  if (!verdict.ok) return verdict;
  if (verdict.claims.iss !== trust.issuer) return refuse("FILE_CLAIMS_INVALID", "the response was issued by another control plane");
  if (trust.now.getTime() - trust.clockToleranceMs > verdict.claims.exp * 1000) {
    return refuse("FILE_EXPIRED", "the response's import deadline has passed; answer a new request");
  }
  return verdict;
}
