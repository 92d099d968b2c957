/**
 * The shared plain-text rule: every C0/C1 control, DEL, lone surrogate, line/paragraph
 * separator, bidirectional control and noncharacter is found, at its position; every other
 * character (any script, emoji as surrogate pairs, joiners) passes; `multiline` lets LF and tab
 * through and nothing else.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { findForbiddenCharacter, plainTextProblem } from "../src/index.js";

const isForbidden = (u: number, multiline: boolean) =>
  (u < 0x20 && !(multiline && (u === 0x0a || u === 0x09))) ||
  (u >= 0x7f && u <= 0x9f) ||
  (u >= 0xd800 && u <= 0xdfff) ||
  u === 0x2028 ||
  u === 0x2029 ||
  (u >= 0x202a && u <= 0x202e) ||
  (u >= 0x2066 && u <= 0x2069) ||
  u === 0xfffe ||
  u === 0xffff;

describe("plain text", () => {
  it("finds exactly the forbidden code units, in any text around them", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.integer({ min: 0, max: 0xffff }), fc.string({ unit: "grapheme" }), fc.boolean(), (before, unit, after, multiline) => {
        const text = before + String.fromCharCode(unit) + after;
        const found = findForbiddenCharacter(text, { multiline });
        if (isForbidden(unit, multiline) && !(unit >= 0xd800 && unit <= 0xdfff)) {
          expect(found?.index).toBe(before.length);
        } else if (!(unit >= 0xd800 && unit <= 0xdfff)) {
          expect(found).toBeUndefined();
        }
      }),
    );
  });

  it("accepts surrogate pairs and refuses lone halves", () => {
    expect(findForbiddenCharacter("👩‍⚕️ Zürich 東京")).toBeUndefined();
    expect(findForbiddenCharacter("a\ud83db")).toMatchObject({ index: 1, kind: "lone surrogate", codePoint: "U+D83D" });
    expect(findForbiddenCharacter("a\udc69")).toMatchObject({ index: 1, kind: "lone surrogate" });
    expect(findForbiddenCharacter("\ud83d")).toMatchObject({ index: 0, kind: "lone surrogate" });
  });

  it("names the field and the character without echoing it", () => {
    expect(plainTextProblem("name", "ab\u0000c")).toBe("name must be plain text: it holds a control character (U+0000 at position 2)");
    expect(plainTextProblem("reason", "line one\n\tline two", { multiline: true })).toBeUndefined();
    expect(plainTextProblem("reason", "a\r\nb", { multiline: true })).toMatch(/U\+000D/);
    expect(plainTextProblem("name", "a\nb")).toMatch(/U\+000A/);
  });
});
