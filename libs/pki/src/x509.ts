// @peculiar/x509 needs reflect-metadata loaded before it and a WebCrypto provider before any
// use; every module in this package imports the library through here so the order always holds.
import "reflect-metadata";
import * as x509 from "@peculiar/x509";
import { webcrypto } from "node:crypto";

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509 };
/** node's WebCrypto SubtleCrypto (the workspace compiles without the DOM lib). */
export const subtle = webcrypto.subtle;

/** WebCrypto types from node (no DOM lib in this workspace). */
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type Algorithm = webcrypto.Algorithm;
export type EcdsaParams = webcrypto.EcdsaParams;
export type EcKeyGenParams = webcrypto.EcKeyGenParams;
