import {
  DEFAULT_TRUST_DOMAIN,
  applianceSpiffeId,
  createCertificateAuthority,
  generateKeyAndCsr,
  issueCertificateFromCsr,
  issueServerAndServiceCertificate,
  loadCertificateAuthority,
  serviceSpiffeId,
  type CertificateAuthority,
  type PemKeyPair,
} from "@lcp/pki";

/** An appliance's client certificate (issued from a CSR by the appliance CA) and its key. */
export interface TestApplianceCertificate extends PemKeyPair {
  serialNumber: string;
  spiffeId: string;
  deploymentId: string;
  notBefore: Date;
  notAfter: Date;
}

/** Options for a fresh (uncached) appliance certificate. */
export interface TestApplianceOptions {
  /** Certificate lifetime; default 30 days. */
  validityMs?: number;
  /** Issue time (e.g. in the past, for an already-expired certificate); default now. */
  now?: Date;
}

/** In-memory PKI material for tests: no files, no openssl. */
export interface TestPki {
  trustDomain: string;
  /** The control plane CA: issues every service's server+client certificate. */
  ca: PemKeyPair;
  /** The appliance CA (a separate self-signed CA, as signing-keys holds it). */
  applianceCa: PemKeyPair;
  /** An unrelated CA nobody trusts, for refusal tests. */
  foreignCa: PemKeyPair;
  /** PEM bundle a server trusts for client certificates: `ca` then `applianceCa`. */
  clientCaPem: string;
  /** `spiffe://<td>/service/<name>`. */
  serviceId(name: string): string;
  /** `spiffe://<td>/appliance/<deploymentId>`. */
  applianceId(deploymentId: string): string;
  /** Server+service certificate for `name` (any valid name, so tests can make unknown services), localhost SANs. Cached. */
  service(name: string): Promise<PemKeyPair>;
  /** Same certificate as {@link TestPki.service}: the one a server for `name` listens with. */
  serverFor(name: string): Promise<PemKeyPair>;
  /**
   * An appliance client certificate issued by `applianceCa` through `issueCertificateFromCsr`.
   * Cached per deployment when called without options; with options, always a new key and serial
   * (e.g. the old and the new box after a rebind, or an expired certificate).
   */
  appliance(deploymentId: string, options?: TestApplianceOptions): Promise<TestApplianceCertificate>;
  /** A certificate with the same SPIFFE service id as `service(name)` but from `foreignCa`. Cached. */
  foreignService(name: string): Promise<PemKeyPair>;
  /** A certificate claiming `spiffe://<td>/appliance/<deploymentId>` but issued by `foreignCa`. Cached. */
  foreignAppliance(deploymentId: string): Promise<TestApplianceCertificate>;
}

/** Options for {@link createTestPki}. */
export interface TestPkiOptions {
  /** Default `lcp.local`. */
  trustDomain?: string;
}

const DEFAULT_APPLIANCE_VALIDITY_MS = 30 * 86_400_000;
const HOSTS = ["localhost", "127.0.0.1", "::1"];

// Material is immutable, so every test in a process can share it: keygen happens once per
// trust domain, not once per test.
const cache = new Map<string, Promise<TestPki>>();

/**
 * Creates (or returns this process's cached) test PKI for a trust domain. All keys are P-256 so
 * every certificate works with node TLS and grpc-js.
 */
export function createTestPki(options: TestPkiOptions = {}): Promise<TestPki> {
  const trustDomain = options.trustDomain ?? DEFAULT_TRUST_DOMAIN;
  let pki = cache.get(trustDomain);
  if (!pki) {
    pki = buildTestPki(trustDomain);
    // A failed build must not poison the cache for later tests.
    pki.catch(() => cache.delete(trustDomain));
    cache.set(trustDomain, pki);
  }
  return pki;
}

async function buildTestPki(trustDomain: string): Promise<TestPki> {
  const [ca, applianceCa, foreignCa] = await Promise.all([
    createCertificateAuthority({ commonName: `test CA (${trustDomain})`, validityDays: 3650 }),
    createCertificateAuthority({ commonName: `test appliance CA (${trustDomain})`, validityDays: 3650 }),
    createCertificateAuthority({ commonName: "foreign CA", validityDays: 3650 }),
  ]);
  const [caLoaded, applianceCaLoaded, foreignLoaded] = await Promise.all([
    loadCertificateAuthority(ca),
    loadCertificateAuthority(applianceCa),
    loadCertificateAuthority(foreignCa),
  ]);

  const memo = <T>(fn: (key: string) => Promise<T>): ((key: string) => Promise<T>) => {
    const results = new Map<string, Promise<T>>();
    return (key) => {
      let result = results.get(key);
      if (!result) {
        result = fn(key);
        result.catch(() => results.delete(key));
        results.set(key, result);
      }
      return result;
    };
  };

  const serviceFrom = (authority: CertificateAuthority) => (name: string) =>
    issueServerAndServiceCertificate(authority, { service: name, trustDomain, hosts: HOSTS, validityDays: 365 });

  const applianceFrom =
    (authority: CertificateAuthority) =>
    async (deploymentId: string, opts: TestApplianceOptions = {}): Promise<TestApplianceCertificate> => {
      const spiffeId = applianceSpiffeId(trustDomain, deploymentId);
      const { keyPem, csrPem } = await generateKeyAndCsr({ spiffeId, commonName: deploymentId });
      const issued = await issueCertificateFromCsr(authority, {
        csrPem,
        spiffeId,
        validityMs: opts.validityMs ?? DEFAULT_APPLIANCE_VALIDITY_MS,
        ...(opts.now ? { now: opts.now } : {}),
      });
      if (!issued.ok) throw new Error(`test appliance certificate refused: ${issued.code} ${issued.message}`);
      const { certPem, serialNumber, notBefore, notAfter } = issued;
      return { certPem, keyPem, serialNumber, notBefore, notAfter, spiffeId, deploymentId };
    };

  const service = memo(serviceFrom(caLoaded));
  const issueAppliance = applianceFrom(applianceCaLoaded);
  const cachedAppliance = memo((id) => issueAppliance(id));
  const foreignApplianceIssuer = applianceFrom(foreignLoaded);

  return {
    trustDomain,
    ca,
    applianceCa,
    foreignCa,
    clientCaPem: `${ca.certPem.trimEnd()}\n${applianceCa.certPem.trimEnd()}\n`,
    serviceId: (name) => serviceSpiffeId(trustDomain, name),
    applianceId: (id) => applianceSpiffeId(trustDomain, id),
    service,
    serverFor: service,
    appliance: (id, opts) => (opts ? issueAppliance(id, opts) : cachedAppliance(id)),
    foreignService: memo(serviceFrom(foreignLoaded)),
    foreignAppliance: memo((id) => foreignApplianceIssuer(id)),
  };
}
