/**
 * The development identity provider's fixed names, in a module of their own so the CLI and
 * `npm start` can use them without loading oidc-provider.
 */

/** The dev identity provider's fixed port under `npm start` (the console is on 7440). */
export const DEV_IDP_PORT = 7441;
/** The `aud` of its access tokens and the resource they are issued for: the apps' `OIDC_AUDIENCE`. */
export const DEV_IDP_AUDIENCE = "urn:lcp:admin";
/** The claim of its tokens holding the user's roles (an array of role names). */
export const DEV_IDP_ROLES_CLAIM = "roles";
/** The console's client id. */
export const CONSOLE_CLIENT_ID = "lcp-console";
/** The CLI's client id (`npm run token`). */
export const CLI_CLIENT_ID = "lcp-cli";
/**
 * The CLI's redirect URI: a loopback address nothing listens on; `signInAs` reads the code from
 * the redirect itself and never follows it.
 */
export const CLI_REDIRECT_URI = "http://127.0.0.1/lcp-cli/callback";
/** The longest username or password the login form accepts. */
export const MAX_CREDENTIAL_LENGTH = 256;
/** The folder under `DATA_DIR` that `npm start` gives the provider as its `stateDir`. */
export const DEV_IDP_STATE_DIR = "dev-idp";
