/**
 * Asks before anything that changes a box. A native modal `<dialog>`: focus moves into it and
 * returns to the button that opened it, Escape closes it, the page behind is inert. Its text
 * names what will happen to the box; the gravest actions also ask the operator to type a word.
 */
import { useEffect, useId, useRef, useState, type FormEvent, type ReactNode } from "react";
import { describeError } from "../lib/errors.js";
import { Button } from "./Button.js";
import { ErrorBanner } from "./ErrorBanner.js";

/** Props of {@link ConfirmDialog}. */
export interface ConfirmDialogProps {
  readonly open: boolean;
  /** The dialog's heading and accessible name ("Revoke the licence of icu-ward-3?"). */
  readonly title: string;
  /** What will happen, in sentences: the dialog's accessible description. */
  readonly consequence: ReactNode;
  /** Inputs the action needs (reason, fingerprint), shown under the consequence. */
  readonly children?: ReactNode;
  /** The confirming button's text ("Revoke licence"). */
  readonly confirmLabel: string;
  readonly tone?: "danger" | "primary";
  /** When set, the confirming button stays disabled until this exact text is typed. */
  readonly confirmPhrase?: string;
  readonly busy?: boolean;
  /** The last attempt's failure; refusals naming a field are shown on that field by the caller. */
  readonly error?: unknown;
  readonly onConfirm: () => void;
  readonly onClose: () => void;
}

/** A confirmation dialog; see the module comment. */
export function ConfirmDialog({ open, title, consequence, children, confirmLabel, tone = "danger", confirmPhrase, busy = false, error, onConfirm, onClose }: ConfirmDialogProps) {
  const ref = useRef<HTMLDialogElement>(null);
  const returnFocus = useRef<HTMLElement | null>(null);
  const titleId = useId();
  const bodyId = useId();
  const phraseId = useId();
  const [typed, setTyped] = useState("");

  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    if (open && !dialog.open) {
      returnFocus.current = document.activeElement instanceof HTMLElement ? document.activeElement : null;
      setTyped("");
      dialog.showModal();
      // The first field if the action needs input, else Cancel: never the destructive button.
      const first = dialog.querySelector<HTMLElement>(".dialog-body input, .dialog-body textarea, .dialog-body select");
      (first ?? dialog.querySelector<HTMLElement>("[data-cancel]"))?.focus();
    } else if (!open && dialog.open) {
      dialog.close();
    }
  }, [open]);

  // Focus goes back where it came from however the dialog closed.
  useEffect(() => {
    const dialog = ref.current;
    if (!dialog) return;
    const onClosed = () => {
      const target = returnFocus.current;
      returnFocus.current = null;
      if (target?.isConnected) target.focus();
    };
    dialog.addEventListener("close", onClosed);
    return () => dialog.removeEventListener("close", onClosed);
  }, []);

  const phraseOk = confirmPhrase === undefined || typed.trim() === confirmPhrase;
  const submit = (e: FormEvent) => {
    e.preventDefault();
    if (busy || !phraseOk) return;
    onConfirm();
  };
  const described = error ? describeError(error) : null;
  const hasFieldErrors = described ? Object.keys(described.fieldErrors).length > 0 : false;

  return (
    <dialog
      ref={ref}
      className="dialog"
      aria-labelledby={titleId}
      aria-describedby={bodyId}
      onCancel={(e) => {
        // Escape: close, unless the call is on its way (its answer must be seen).
        e.preventDefault();
        if (!busy) onClose();
      }}
    >
      {open ? (
        <form onSubmit={submit} noValidate>
          <h2 id={titleId} className="dialog-title">
            {title}
          </h2>
          <div id={bodyId} className="dialog-consequence">
            {consequence}
          </div>
          <div className="dialog-body">
            {children}
            {confirmPhrase !== undefined ? (
              <div className="field">
                <label htmlFor={phraseId} className="field-label">
                  Type <strong className="mono">{confirmPhrase}</strong> to confirm
                </label>
                <input id={phraseId} className="input mono" autoComplete="off" spellCheck={false} value={typed} onChange={(e) => setTyped(e.target.value)} />
              </div>
            ) : null}
          </div>
          {error ? <ErrorBanner error={error} title={hasFieldErrors ? "Check the highlighted field" : undefined} /> : null}
          <div className="dialog-actions">
            <Button data-cancel onClick={onClose} disabled={busy}>
              Cancel
            </Button>
            <Button type="submit" variant={tone} busy={busy} disabled={!phraseOk}>
              {confirmLabel}
            </Button>
          </div>
        </form>
      ) : null}
    </dialog>
  );
}
