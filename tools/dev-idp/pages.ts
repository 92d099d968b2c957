/**
 * The development identity provider's HTML: the sign-in form, the sign-out confirmation and the
 * error pages. No script at all, one inline stylesheet allowed by its hash, and every value from
 * outside escaped here.
 */
import { createHash } from "node:crypto";

const STYLE = `body{font:16px/1.5 system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}
main{max-width:22rem;margin:4rem auto;padding:2rem;background:#fff;border:1px solid #d0d4da;border-radius:.5rem}
h1{font-size:1.5rem;margin:0 0 .5rem}
p{margin:.5rem 0}
label{display:block;font-weight:600;margin-top:1rem}
input{box-sizing:border-box;width:100%;padding:.5rem;font:inherit;border:1px solid #69707a;border-radius:.25rem}
input:focus,button:focus{outline:3px solid #1f6feb;outline-offset:2px}
button{margin-top:1.5rem;width:100%;padding:.6rem;font:inherit;font-weight:600;color:#fff;background:#1f6feb;border:0;border-radius:.25rem;cursor:pointer}
button.secondary{color:#1b1f24;background:#e4e7eb;margin-top:.75rem}
.error{color:#a40e26;background:#ffebe9;border:1px solid #ff8182;border-radius:.25rem;padding:.5rem}
.note{color:#4d545c;font-size:.875rem}`;

/** The CSP source allowing exactly {@link STYLE}. */
const STYLE_SOURCE = `'sha256-${createHash("sha256").update(STYLE).digest("base64")}'`;

/** Escapes text for HTML content and double-quoted attributes. */
export function escapeHtml(value: unknown): string {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * The hash of an empty script: a `script-src` that allows nothing, but to which oidc-provider
 * appends the hash of the one inline script it writes itself (the auto-submitting sign-out form
 * it answers when nobody is signed in), which would otherwise never submit.
 */
const EMPTY_SCRIPT_SOURCE = `'sha256-${createHash("sha256").update("").digest("base64")}'`;

/**
 * The headers every HTML page of the provider carries: no script may run (`pushedScripts`: except
 * what oidc-provider hashes into the policy itself), styles only by hash, forms may post to the
 * provider and be redirected on to the registered clients (`formTargets`, origins), no framing, no
 * caching, no referrer.
 */
export function securityHeaders(formTargets: readonly string[], options: { pushedScripts?: boolean } = {}): Record<string, string> {
  return {
    "content-security-policy": [
      "default-src 'none'",
      ...(options.pushedScripts ? [`script-src ${EMPTY_SCRIPT_SOURCE}`] : []),
      `style-src ${STYLE_SOURCE}`,
      `form-action 'self' ${formTargets.join(" ")}`.trim(),
      "frame-ancestors 'none'",
      "base-uri 'none'",
    ].join("; "),
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
  };
}

/** A complete page around `body` (already escaped HTML). */
export function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · LCP development identity provider</title>
<style>${STYLE}</style>
</head>
<body>
<main>
${body}
</main>
</body>
</html>
`;
}

/** What {@link loginPage} shows. */
export interface LoginPageInput {
  /** Where the form posts. */
  action: string;
  /** The application asking (its client name). */
  clientName: string;
  /** Pre-filled username after a refusal. */
  username?: string;
  /** A refusal to show above the form. */
  error?: string;
}

/** The sign-in form: labelled fields, the refusal (if any) announced and tied to the fields. */
export function loginPage(input: LoginPageInput): string {
  const error = input.error === undefined ? "" : `<p class="error" id="sign-in-error" role="alert">${escapeHtml(input.error)}</p>\n`;
  const described = input.error === undefined ? "" : ' aria-describedby="sign-in-error" aria-invalid="true"';
  return page(
    "Sign in",
    `<h1>Sign in</h1>
<p>to continue to ${escapeHtml(input.clientName)}</p>
${error}<form method="post" action="${escapeHtml(input.action)}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required maxlength="256" value="${escapeHtml(input.username ?? "")}"${described}${input.username ? "" : " autofocus"}>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="256"${described}${input.username ? " autofocus" : ""}>
<button type="submit">Sign in</button>
</form>
<p class="note">Development identity provider: the users and their passwords are printed by <code>npm start</code>. Never use it in production.</p>`,
  );
}

/** A page saying what went wrong and what to do. */
export function messagePage(title: string, lines: readonly string[]): string {
  return page(title, `<h1>${escapeHtml(title)}</h1>\n${lines.map((l) => `<p>${escapeHtml(l)}</p>`).join("\n")}`);
}

/** The sign-out confirmation around oidc-provider's form (`id="op.logoutForm"`, its own markup). */
export function logoutPage(form: string, host: string): string {
  return page(
    "Sign out",
    `<h1>Sign out</h1>
<p>Do you want to sign out of ${escapeHtml(host)}?</p>
${form}
<button type="submit" form="op.logoutForm" name="logout" value="yes" autofocus>Yes, sign me out</button>
<button type="submit" form="op.logoutForm" class="secondary">No, stay signed in</button>`,
  );
}
