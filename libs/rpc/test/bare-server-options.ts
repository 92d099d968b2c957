/**
 * The least `createServer` needs, for tests of option validation (a server that should refuse to
 * start): the test PKI's certificate for `name`, port 0, nothing else.
 */
import type { ServerOptions } from "@lcp/rpc";
import type { TestPki } from "@lcp/testing/pki";

/** `createServer` options for `name` with the test PKI; spread and add the option under test. */
export async function bareServerOptions(pki: TestPki, name: ServerOptions["name"], register: ServerOptions["register"]): Promise<ServerOptions> {
  const cert = await pki.service(name);
  return { name, port: 0, trustDomain: pki.trustDomain, tls: { certPem: cert.certPem, keyPem: cert.keyPem, caPem: pki.ca.certPem }, register };
}
