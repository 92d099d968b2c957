import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { subtle, x509, type Algorithm, type CryptoKey, type CryptoKeyPair, type EcdsaParams, type EcKeyGenParams } from "./x509.js";

/** Key algorithms this package generates. P-256 is the default: node TLS cannot use Ed25519 certificates. */
export type KeyAlgorithm = "P-256" | "P-384" | "Ed25519";

/** A private key loaded for signing, with the WebCrypto parameters that go with it. */
export interface SigningKey {
  privateKey: CryptoKey;
  /** Signature algorithm to pass to @peculiar/x509 generators. */
  signingAlgorithm: Algorithm | EcdsaParams;
  /** The node KeyObject, for comparing against a certificate's public key. */
  keyObject: KeyObject;
}

/** WebCrypto generation/import parameters for a key algorithm. */
export function keyParams(algorithm: KeyAlgorithm): EcKeyGenParams | Algorithm {
  return algorithm === "Ed25519" ? { name: "Ed25519" } : { name: "ECDSA", namedCurve: algorithm };
}

/** Signature parameters for a key algorithm (hash matched to the curve size). */
export function signingParams(algorithm: KeyAlgorithm): Algorithm | EcdsaParams {
  if (algorithm === "Ed25519") return { name: "Ed25519" };
  return { name: "ECDSA", hash: algorithm === "P-384" ? "SHA-384" : "SHA-256" } as EcdsaParams;
}

/** Generates an extractable key pair for certificates and CSRs. */
export async function generateKeyPair(algorithm: KeyAlgorithm = "P-256"): Promise<CryptoKeyPair> {
  return (await subtle.generateKey(keyParams(algorithm), true, ["sign", "verify"])) as CryptoKeyPair;
}

/** Exports a private CryptoKey as a PEM PKCS#8 block. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  const der = await subtle.exportKey("pkcs8", key);
  return x509.PemConverter.encode(der, "PRIVATE KEY");
}

/** Which supported algorithm a node key object uses, or null if unsupported for signing here. */
export function keyAlgorithmOf(key: KeyObject): KeyAlgorithm | null {
  if (key.asymmetricKeyType === "ed25519") return "Ed25519";
  if (key.asymmetricKeyType === "ec") {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === "prime256v1") return "P-256";
    if (curve === "secp384r1") return "P-384";
  }
  return null;
}

/**
 * Loads a PEM private key (PKCS#8, or SEC1 "EC PRIVATE KEY") for signing certificates.
 * Supports P-256, P-384 and Ed25519; throws a clear error otherwise.
 */
export async function importSigningKey(keyPem: string): Promise<SigningKey> {
  const keyObject = createPrivateKey({ key: keyPem, format: "pem" });
  const algorithm = keyAlgorithmOf(keyObject);
  if (!algorithm) {
    throw new Error(`unsupported CA key type ${keyObject.asymmetricKeyType ?? "unknown"} (use ECDSA P-256/P-384 or Ed25519)`);
  }
  // Re-export as PKCS#8 so SEC1 keys import too; WebCrypto only takes PKCS#8.
  const der = keyObject.export({ format: "der", type: "pkcs8" });
  const privateKey = await subtle.importKey("pkcs8", der, keyParams(algorithm), false, ["sign"]);
  return { privateKey, signingAlgorithm: signingParams(algorithm), keyObject };
}

/** DER SubjectPublicKeyInfo of a private or public key, for "does this key match that cert" checks. */
export function spkiDer(key: KeyObject): Buffer {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return pub.export({ format: "der", type: "spki" });
}
