import { createHash } from "node:crypto";
import { createTrustingFetch, type TrustingFetch } from "@lcp/tokens";
import * as oidc from "openid-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI_REDIRECT_URI } from "../provider.js";
import { discover } from "../sign-in.js";
import { startTestIdp, type TestIdp } from "./support.js";

/** A browser-like session with the provider: cookies kept by name, redirects by hand. */
function browser(fetch: TrustingFetch) {
  const cookies = new Map<string, string>();
  return async (url: URL, init: { method?: string; body?: string; contentType?: string } = {}) => {
    const res = await fetch(url, {
      method: init.method ?? "GET",
      headers: {
        cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join("; "),
        ...(init.contentType ? { "content-type": init.contentType } : {}),
      },
      body: init.body ?? null,
    });
    for (const line of res.headers.getSetCookie()) {
      const [pair = ""] = line.split(";");
      const eq = pair.indexOf("=");
      cookies.set(pair.slice(0, eq), pair.slice(eq + 1));
    }
    return res;
  };
}

describe("the dev identity provider's login page", () => {
  let t: TestIdp;
  let fetch: TrustingFetch;
  beforeAll(async () => {
    t = await startTestIdp();
    fetch = createTrustingFetch({ caPem: t.caPem });
  });
  afterAll(() => t?.close());

  /** Starts an authorization request and returns the login page's URL, its response and the browser. */
  async function openLogin() {
    const config = await discover(t.idp.issuer, "lcp-cli", undefined, fetch);
    const go = browser(fetch);
    const authorize = await go(
      oidc.buildAuthorizationUrl(config, { redirect_uri: CLI_REDIRECT_URI, scope: "openid", code_challenge: await oidc.calculatePKCECodeChallenge(oidc.randomPKCECodeVerifier()), code_challenge_method: "S256" }),
    );
    expect(authorize.status).toBe(303);
    const loginUrl = new URL(authorize.headers.get("location")!, t.idp.issuer);
    expect(loginUrl.pathname).toMatch(/^\/interaction\/[\w-]+$/);
    return { go, loginUrl, page: await go(loginUrl) };
  }

  it("is an HTML form with labelled Username and Password fields and a Sign in button, under a CSP, with no script", async () => {
    const { page, loginUrl } = await openLogin();
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = page.headers.get("content-security-policy")!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toMatch(/form-action 'self' .*https:\/\/localhost:7440/);
    expect(csp).not.toMatch(/script-src|unsafe-inline/);
    expect(page.headers.get("cache-control")).toBe("no-store");
    const html = await page.text();
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/ on[a-z]+=/i);
    expect(html).toContain('<html lang="en">');
    expect(html).toContain('<label for="username">Username</label>');
    expect(html).toMatch(/<input id="username" name="username"[^>]*autocomplete="username"[^>]*maxlength="256"/);
    expect(html).toContain('<label for="password">Password</label>');
    expect(html).toMatch(/<input id="password" name="password" type="password"[^>]*autocomplete="current-password"/);
    expect(html).toContain('<button type="submit">Sign in</button>');
    expect(html).toContain(`<form method="post" action="${loginUrl.pathname}/login">`);
  });

  it("shows a refusal in the page, tied to the fields, keeps the username and never echoes the password", async () => {
    const { go, loginUrl } = await openLogin();
    const res = await go(new URL(`${loginUrl.pathname}/login`, loginUrl), {
      method: "POST",
      contentType: "application/x-www-form-urlencoded",
      body: new URLSearchParams({ username: 'support"><b>x', password: "Secret-Wrong-Pass" }).toString(),
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).toContain('<p class="error" id="sign-in-error" role="alert">Wrong username or password.</p>');
    expect(html).toMatch(/<input id="username"[^>]*value="support&#34;&#62;&#60;b&#62;x" aria-describedby="sign-in-error" aria-invalid="true"/);
    expect(html).not.toContain("<b>x");
    expect(html).not.toContain("Secret-Wrong-Pass");
  });

  it("refuses a body that is not a form, one larger than a sign-in needs, and a GET to the login action", async () => {
    const { go, loginUrl } = await openLogin();
    const action = new URL(`${loginUrl.pathname}/login`, loginUrl);
    const json = await go(action, { method: "POST", contentType: "application/json", body: JSON.stringify({ username: "support", password: "x" }) });
    expect(json.status).toBe(415);
    const huge = await go(action, { method: "POST", contentType: "application/x-www-form-urlencoded", body: `username=support&password=${"a".repeat(64 * 1024)}` });
    expect(huge.status).toBe(413);
    expect(await huge.text()).not.toContain("aaaaaaaa");
    const get = await go(action);
    expect(get.status).toBe(405);
    // The interaction is still usable after the refusals.
    expect((await go(loginUrl)).status).toBe(200);
  });

  it("answers a login link without its cookie, or for another interaction, with an expired-sign-in page", async () => {
    const { loginUrl } = await openLogin();
    const stranger = await fetch(loginUrl);
    expect(stranger.status).toBe(400);
    expect(await stranger.text()).toContain("This sign-in request has expired or was already used.");

    const { go } = await openLogin();
    const crossed = await go(loginUrl);
    expect(crossed.status).toBe(400);
    expect(await crossed.text()).toContain("expired or was already used");
  });

  it("asks a signed-in user to confirm signing out on a page without script; signs out at once otherwise, its one script allowed by hash", async () => {
    const { go, loginUrl } = await openLogin();
    const support = t.idp.users.find((u) => u.role === "support")!;
    let res = await go(new URL(`${loginUrl.pathname}/login`, loginUrl), {
      method: "POST",
      contentType: "application/x-www-form-urlencoded",
      body: new URLSearchParams({ username: support.username, password: support.password }).toString(),
    });
    for (let hops = 0; res.status === 303 && !res.headers.get("location")!.startsWith(CLI_REDIRECT_URI); hops++) {
      expect(hops).toBeLessThan(8);
      res = await go(new URL(res.headers.get("location")!, t.idp.issuer));
    }
    expect(res.headers.get("location")).toMatch(/[?&]code=/);

    const confirm = await go(new URL("/session/end", t.idp.issuer));
    expect(confirm.status).toBe(200);
    const page = await confirm.text();
    expect(page).not.toMatch(/<script/i);
    expect(page).toContain('<form id="op.logoutForm" method="post"');
    expect(page).toContain('<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out</button>');
    expect(confirm.headers.get("content-security-policy")).toContain("default-src 'none'");

    // Nobody signed in: oidc-provider answers with a form that submits itself; its script, and only
    // it, is allowed by its hash, so the sign-out does not stall.
    const anonymous = await fetch(new URL("/session/end", t.idp.issuer));
    const html = await anonymous.text();
    const script = /<script>([\s\S]*?)<\/script>/.exec(html)?.[1];
    expect(script).toBeDefined();
    const csp = anonymous.headers.get("content-security-policy")!;
    expect(csp).toContain(`'sha256-${createHash("sha256").update(script!).digest("base64")}'`);
    expect(csp).toContain("default-src 'none'");
    expect(csp).not.toContain("unsafe-inline");
  });

  it("serves its error pages under the same CSP, without script", async () => {
    const res = await fetch(new URL("/auth?client_id=nobody&response_type=code", t.idp.issuer));
    expect(res.status).toBe(400);
    expect(res.headers.get("content-security-policy")).toContain("default-src 'none'");
    const html = await res.text();
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain("invalid_client");
  });
});
