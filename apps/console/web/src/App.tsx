/**
 * The app: asks who is signed in (or sends them to sign in), then provides the Connect
 * transport and the query cache to the screens, and routes.
 */
import { TransportProvider } from "@connectrpc/connect-query";
import { MutationCache, QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { lazy, Suspense, useEffect, useMemo, useState, type ComponentType } from "react";
import { Shell } from "./components/Shell.js";
import { Spinner } from "./components/Spinner.js";
import { isRetryable } from "./lib/errors.js";
import { navigate, useLocation } from "./lib/navigation.js";
import { BASE_PATH, matchRoute, type Route } from "./lib/router.js";
import { fetchSession, loginUrl, type Session, type SessionResult } from "./lib/session.js";
import { SessionProvider } from "./lib/session-context.js";
import { createConsoleTransport } from "./lib/transport.js";
import { LicensesScreen } from "./screens/Licenses.js";
import { NotFoundScreen } from "./screens/NotFound.js";

/**
 * A screen loaded when it is first opened: the first load carries only the shell and Licenses
 * (where `/licensing` lands), so the console starts sooner; the others are small chunks fetched
 * on the first visit.
 */
function screen<P extends object>(load: () => Promise<ComponentType<P>>): ComponentType<P> {
  return lazy(async () => ({ default: await load() }));
}
const AuditScreen = screen(async () => (await import("./screens/Audit.js")).AuditScreen);
const DeploymentScreen = screen(async () => (await import("./screens/Deployment.js")).DeploymentScreen);
const HeartbeatsScreen = screen(async () => (await import("./screens/Heartbeats.js")).HeartbeatsScreen);
const LicenseNewScreen = screen(async () => (await import("./screens/LicenseNew.js")).LicenseNewScreen);
const OfflineScreen = screen(async () => (await import("./screens/Offline.js")).OfflineScreen);
const SettingsScreen = screen(async () => (await import("./screens/Settings.js")).SettingsScreen);
const SigningScreen = screen(async () => (await import("./screens/Signing.js")).SigningScreen);
const SweepsScreen = screen(async () => (await import("./screens/Sweeps.js")).SweepsScreen);

/** Sends the browser to sign in, coming back to the page it is on. */
function signIn(): void {
  window.location.assign(loginUrl(window.location));
}

function Screen({ route }: { route: Route }) {
  switch (route.name) {
    case "licenses":
      return <LicensesScreen />;
    case "license-new":
      return <LicenseNewScreen />;
    case "offline":
      return <OfflineScreen />;
    case "deployment":
      return <DeploymentScreen key={route.id} id={route.id} />;
    case "signing":
      return <SigningScreen />;
    case "heartbeats":
      return <HeartbeatsScreen />;
    case "settings":
      return <SettingsScreen />;
    case "sweeps":
      return <SweepsScreen />;
    case "audit":
      return <AuditScreen />;
    case "not-found":
      return <NotFoundScreen path={route.path} />;
  }
}

function SignedIn({ session }: { session: Session }) {
  const { pathname } = useLocation();
  const route = matchRoute(pathname);
  const transport = useMemo(
    () => createConsoleTransport({ csrfToken: () => session.csrfToken, onUnauthenticated: signIn }),
    [session.csrfToken],
  );
  const queryClient = useMemo(() => {
    const client: QueryClient = new QueryClient({
      // A write can move what any screen shows (a provision adds a row to Licenses, a revoke
      // changes Heartbeats and the audit trail), so every cached read is stale after one.
      mutationCache: new MutationCache({ onSuccess: () => client.invalidateQueries() }),
      defaultOptions: {
        queries: {
          // Refusals (permission, not found, bad input) never change by asking again.
          retry: (count, err) => count < 2 && isRetryable(err),
          staleTime: 10_000,
          refetchOnWindowFocus: false,
        },
        mutations: { retry: false },
      },
    });
    return client;
  }, []);
  return (
    <SessionProvider session={session}>
      <TransportProvider transport={transport}>
        <QueryClientProvider client={queryClient}>
          <Shell route={route}>
            <Suspense fallback={<Spinner label="Opening the screen" />}>
              <Screen route={route} />
            </Suspense>
          </Shell>
        </QueryClientProvider>
      </TransportProvider>
    </SessionProvider>
  );
}

/** The console app; see the module comment. */
export function App() {
  const [result, setResult] = useState<SessionResult | null>(null);
  useEffect(() => {
    // The server only serves /licensing paths; anything else opened in dev lands on Licenses.
    if (!window.location.pathname.startsWith(BASE_PATH)) navigate(BASE_PATH, { replace: true });
    let live = true;
    void fetchSession().then((r) => {
      if (!live) return;
      if (r.kind === "signed-out") signIn();
      else setResult(r);
    });
    return () => {
      live = false;
    };
  }, []);

  if (result?.kind === "ok") return <SignedIn session={result.session} />;
  return (
    <main id="main" className="boot">
      {result?.kind === "error" ? (
        <div className="banner banner-error" role="alert">
          <h1 className="banner-title">The console could not start</h1>
          <p>{result.message}</p>
        </div>
      ) : (
        <Spinner label="Checking your session" />
      )}
    </main>
  );
}
