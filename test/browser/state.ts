/** What `cluster-main.ts` tells the browser tests about the running system (a JSON file). */
export interface BrowserClusterState {
  /** `https://localhost:<port>` of the console server. */
  consoleUrl: string;
  dataDir: string;
  /** The dev CA (PEM file) the boxes and curl trust. */
  caPath: string;
  licensingUrl: string;
  /** The dev identity provider's user per role. */
  users: Record<string, { username: string; password: string }>;
}
