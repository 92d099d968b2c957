/**
 * A browser reduced to what the console's tests need: HTTPS requests trusting the test CA, a
 * cookie jar per host (Secure, HttpOnly and SameSite are the server's promise; the jar only
 * stores and replays), manual redirects, and a sign-in that posts the provider's login form.
 */
import { request } from "node:https";

/** One answer, read in full. */
export interface Answer {
  readonly url: string;
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** `Location` resolved against `url`, when there is one. */
  readonly location?: string;
  /** The raw `Set-Cookie` lines of this answer. */
  readonly setCookies: readonly string[];
}

/** Options of one request. */
export interface RequestOptions {
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** Send no cookies from the jar (and keep none from the answer). */
  readonly anonymous?: boolean;
}

/** A browser with a cookie jar. */
export interface TestBrowser {
  request(url: string, options?: RequestOptions): Promise<Answer>;
  /** Follows redirects from `answer` (GET), up to `max` hops. */
  follow(answer: Answer, max?: number): Promise<Answer>;
  /** The cookie `name` held for `url`'s host, if any. */
  cookie(url: string, name: string): string | undefined;
  /** Sets (or with `undefined` deletes) a cookie for `url`'s host, as a forger would. */
  setCookie(url: string, name: string, value: string | undefined): void;
  /**
   * Signs in through the console as `user`: `/auth/login?return=…`, the provider's login form
   * posted, redirects followed back to the console. Returns the console's last answer.
   */
  signIn(consoleUrl: string, user: string, returnPath?: string): Promise<SignInTrail>;
  /**
   * The same up to the provider's redirect back: the callback URL the provider sent the browser
   * to, not yet requested, and the login cookie `/auth/login` set (still in the jar).
   */
  beginSignIn(consoleUrl: string, user: string, returnPath?: string): Promise<{ readonly callbackUrl: string; readonly loginCookie: string }>;
}

/** What a sign-in went through. */
export interface SignInTrail {
  /** The console's `/auth/callback` answer (its Set-Cookie, its redirect). */
  readonly callback: Answer;
  /** The console's answer where the callback sent the browser. */
  readonly final: Answer;
}

/** Creates a browser trusting `caPem`. */
export function createTestBrowser(caPem: string): TestBrowser {
  const jar = new Map<string, Map<string, string>>();
  const jarFor = (url: string) => {
    const host = new URL(url).host;
    let cookies = jar.get(host);
    if (!cookies) jar.set(host, (cookies = new Map()));
    return cookies;
  };

  const browser: TestBrowser = {
    request: (url, options = {}) =>
      new Promise<Answer>((resolve, reject) => {
        const cookies = jarFor(url);
        const headers: Record<string, string | number> = { ...options.headers };
        if (!options.anonymous && cookies.size > 0 && headers.cookie === undefined) {
          headers.cookie = [...cookies].map(([name, value]) => `${name}=${value}`).join("; ");
        }
        if (options.body !== undefined) headers["content-length"] = Buffer.byteLength(options.body);
        const req = request(url, { method: options.method ?? "GET", headers, ca: caPem, agent: false }, (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () => {
            const setCookies = res.headers["set-cookie"] ?? [];
            if (!options.anonymous) {
              for (const line of setCookies) {
                const [pair, ...attributes] = line.split(";");
                const eq = pair!.indexOf("=");
                const name = pair!.slice(0, eq).trim();
                const value = pair!.slice(eq + 1).trim();
                const expired = attributes.some((a) => /^\s*max-age=0\s*$/i.test(a) || (/^\s*expires=/i.test(a) && Date.parse(a.split("=")[1]!) < Date.now()));
                if (expired || value === "") cookies.delete(name);
                else cookies.set(name, value);
              }
            }
            const location = typeof res.headers.location === "string" ? new URL(res.headers.location, url).href : undefined;
            resolve({ url, status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), setCookies, ...(location ? { location } : {}) });
          });
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end(options.body);
      }),

    async follow(answer, max = 10) {
      let current = answer;
      for (let hop = 0; hop < max && current.location && [301, 302, 303, 307, 308].includes(current.status); hop++) {
        current = await browser.request(current.location);
      }
      return current;
    },

    cookie: (url, name) => jarFor(url).get(name),
    setCookie(url, name, value) {
      if (value === undefined) jarFor(url).delete(name);
      else jarFor(url).set(name, value);
    },

    async beginSignIn(consoleUrl, user, returnPath = "/licensing") {
      let current = await browser.request(`${consoleUrl}/auth/login?return=${encodeURIComponent(returnPath)}`);
      const loginCookie = browser.cookie(consoleUrl, "__Host-lcp_login");
      if (loginCookie === undefined) throw new Error(`/auth/login set no login cookie (${current.status})`);
      for (let hop = 0; hop < 15; hop++) {
        if (current.location?.startsWith(`${consoleUrl}/auth/callback`) && [302, 303].includes(current.status)) return { callbackUrl: current.location, loginCookie };
        if (current.location && [302, 303].includes(current.status)) {
          current = await browser.request(current.location);
          continue;
        }
        const action = /<form[^>]*action="([^"]+)"/.exec(current.body)?.[1];
        // The provider's login form (absent when the provider still holds a session: single sign-on).
        if (current.status === 200 && action && !current.url.startsWith(consoleUrl)) {
          current = await browser.request(new URL(action, current.url).href, {
            method: "POST",
            headers: { "content-type": "application/x-www-form-urlencoded" },
            body: new URLSearchParams({ login: user }).toString(),
          });
          continue;
        }
        break;
      }
      throw new Error(`the sign-in never reached the console's callback; last answer ${current.status} at ${current.url}: ${current.body.slice(0, 200)}`);
    },

    async signIn(consoleUrl, user, returnPath = "/licensing") {
      const { callbackUrl } = await browser.beginSignIn(consoleUrl, user, returnPath);
      const callback = await browser.request(callbackUrl);
      return { callback, final: await browser.follow(callback) };
    },
  };
  return browser;
}
