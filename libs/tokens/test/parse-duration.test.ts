import { describe, expect, it } from "vitest";
import { DurationError, parseDuration } from "../src/index.js";

describe("parseDuration", () => {
  it("reads each unit", () => {
    expect(parseDuration("500ms")).toBe(500);
    expect(parseDuration("90s")).toBe(90_000);
    expect(parseDuration("15m")).toBe(900_000);
    expect(parseDuration("1h")).toBe(3_600_000);
    expect(parseDuration("7d")).toBe(604_800_000);
    expect(parseDuration(" 0s ")).toBe(0);
  });

  it("refuses anything else with a message naming the input and the expected form", () => {
    for (const bad of ["", "1", "h", "1.5h", "1h30m", "-1s", "10 s", "1w", "1H", "99999999999999999d"]) {
      expect(() => parseDuration(bad)).toThrow(DurationError);
    }
    expect(() => parseDuration("1w")).toThrow(/"1w".*ms, s, m, h or d/);
  });
});
