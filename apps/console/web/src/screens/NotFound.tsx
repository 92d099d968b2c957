/** Any path the console does not know. */
import { Page } from "../components/Page.js";
import { Link } from "../lib/navigation.js";
import { BASE_PATH } from "../lib/router.js";

/** The not-found view. */
export function NotFoundScreen({ path }: { path: string }) {
  return (
    <Page title="Page not found">
      <p>
        There is no console page at <code>{path.slice(0, 200)}</code>.
      </p>
      <p>
        <Link to={BASE_PATH}>Go to Licenses</Link>
      </p>
    </Page>
  );
}
