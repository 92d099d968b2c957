/**
 * @lcp/pki — X.509 for the control plane: SPIFFE ids, certificate authorities, server/service
 * certificates, CSR checks and issuance, and the on-disk development PKI.
 */
export * from "./spiffe.js";
export * from "./ca.js";
export * from "./issue.js";
export * from "./csr.js";
export * from "./generate-csr.js";
export * from "./dev-pki.js";
export * from "./pem.js";
export { normalizeSerialNumber, randomSerialNumber } from "./serial.js";
export type { KeyAlgorithm } from "./keys.js";
