/**
 * Keyset paging as every list screen does it: the services hand out a token for the next page, so
 * a screen can go forward or back to the first page, and a change of filters starts again at page 1.
 */
import { useState } from "react";
import type { Paging } from "../components/DataTable.js";

/** What a list query answered, as far as paging cares. */
export interface PagedAnswer {
  readonly data?: { readonly nextPageToken: string } | undefined;
  /** True while the previous page is still shown as the next one loads. */
  readonly isPlaceholderData: boolean;
}

/** The token of the page to ask for, and the DataTable's paging controls for the answer. */
export interface KeysetPaging {
  readonly token: string;
  controls(answer: PagedAnswer): Paging;
}

/** Keyset paging that starts again whenever `filterKey` (the filters, serialised) changes. */
export function useKeysetPaging(filterKey = ""): KeysetPaging {
  const [paging, setPaging] = useState({ key: filterKey, token: "", page: 1 });
  const current = paging.key === filterKey ? paging : { key: filterKey, token: "", page: 1 };
  return {
    token: current.token,
    controls: (answer) => ({
      page: current.page,
      hasNext: Boolean(answer.data?.nextPageToken) && !answer.isPlaceholderData,
      onNext: () => setPaging({ key: filterKey, token: answer.data?.nextPageToken ?? "", page: current.page + 1 }),
      onFirst: () => setPaging({ key: filterKey, token: "", page: 1 }),
    }),
  };
}
