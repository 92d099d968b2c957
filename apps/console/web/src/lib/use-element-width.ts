/**
 * The rendered width of an element, kept current with a ResizeObserver: charts draw at the
 * width they have, so their text stays at the page's size at 1024 px and at 1280 px alike
 * instead of being scaled with a viewBox.
 */
import { useEffect, useRef, useState, type RefObject } from "react";

/** A ref to put on the element, and its content width in CSS pixels (`fallback` before layout). */
export function useElementWidth<E extends HTMLElement>(fallback = 640): [RefObject<E | null>, number] {
  const ref = useRef<E | null>(null);
  const [width, setWidth] = useState(fallback);
  useEffect(() => {
    const el = ref.current;
    if (!el) return;
    const measure = (w: number) => {
      // Whole pixels, and only real changes: a sub-pixel jitter must not re-render a chart.
      const rounded = Math.floor(w);
      if (rounded > 0) setWidth((prev) => (prev === rounded ? prev : rounded));
    };
    measure(el.getBoundingClientRect().width);
    if (typeof ResizeObserver === "undefined") return;
    const observer = new ResizeObserver((entries) => {
      const entry = entries[0];
      if (entry) measure(entry.contentRect.width);
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, []);
  return [ref, width];
}
