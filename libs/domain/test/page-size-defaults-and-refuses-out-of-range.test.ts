import { describe, expect, it } from "vitest";
import { clampPageSize } from "../src/index.js";

const limits = { default: 50, max: 500 };

describe("clampPageSize", () => {
  it("0 means the default", () => expect(clampPageSize(0, limits)).toEqual({ ok: true, pageSize: 50 }));
  it("keeps a size within range", () => {
    expect(clampPageSize(1, limits)).toEqual({ ok: true, pageSize: 1 });
    expect(clampPageSize(500, limits)).toEqual({ ok: true, pageSize: 500 });
  });
  it("refuses negative, over-max and fractional sizes with INVALID_ARGUMENT", () => {
    for (const n of [-1, 501, 1.5, Number.NaN]) {
      expect(clampPageSize(n, limits)).toMatchObject({ ok: false, code: "INVALID_ARGUMENT", field: "page_size" });
    }
  });
});
