/**
 * Form fields: every input has a label, an optional hint, and the server's refusal shown on the
 * field it names (ErrorInfo metadata `field`), linked by `aria-describedby` and `aria-invalid`.
 */
import { useId, type ReactNode } from "react";
import { DURATION_UNITS, UNIT_LABELS, type DurationUnit, type DurationValue } from "../lib/duration.js";

/** What a control needs to be wired to its label, hint and error. */
export interface ControlProps {
  readonly id: string;
  readonly "aria-describedby"?: string;
  readonly "aria-invalid"?: true;
}

/** Props shared by every field. */
export interface FieldProps {
  readonly label: string;
  readonly hint?: ReactNode;
  /** The refusal to show on this field. */
  readonly error?: string | null;
  readonly required?: boolean;
  readonly className?: string;
}

/** A labelled field around any control; `children` receives the wiring. */
export function Field({ label, hint, error, required, className, children }: FieldProps & { children: (control: ControlProps) => ReactNode }) {
  const id = useId();
  const hintId = `${id}-hint`;
  const errorId = `${id}-error`;
  const describedBy = [error ? errorId : null, hint ? hintId : null].filter(Boolean).join(" ") || undefined;
  return (
    <div className={`field${error ? " field-invalid" : ""}${className ? ` ${className}` : ""}`}>
      <label htmlFor={id} className="field-label">
        {label}
        {required ? <span className="required"> (required)</span> : null}
      </label>
      {children({ id, "aria-describedby": describedBy, ...(error ? { "aria-invalid": true } : {}) })}
      {hint ? (
        <div id={hintId} className="field-hint">
          {hint}
        </div>
      ) : null}
      {error ? (
        <div id={errorId} className="field-error">
          {error}
        </div>
      ) : null}
    </div>
  );
}

/** Props of {@link TextField}. */
export interface TextFieldProps extends FieldProps {
  readonly value: string;
  readonly onChange: (value: string) => void;
  readonly type?: "text" | "search" | "date" | "datetime-local";
  readonly name?: string;
  readonly placeholder?: string;
  readonly maxLength?: number;
  readonly autoComplete?: string;
  readonly readOnly?: boolean;
  readonly disabled?: boolean;
  readonly mono?: boolean;
  readonly spellCheck?: boolean;
  /** Suggestions (a datalist); the input still accepts any text. */
  readonly suggestions?: readonly string[];
}

/** A one-line text input. */
export function TextField({ value, onChange, type = "text", name, placeholder, maxLength, autoComplete = "off", readOnly, disabled, mono, spellCheck, suggestions, ...field }: TextFieldProps) {
  const listId = useId();
  const input = (
    <Field {...field}>
      {(control) => (
        <input
          {...control}
          className={`input${mono ? " mono" : ""}`}
          type={type}
          name={name}
          value={value}
          placeholder={placeholder}
          maxLength={maxLength}
          autoComplete={autoComplete}
          readOnly={readOnly}
          disabled={disabled}
          required={field.required}
          spellCheck={spellCheck}
          list={suggestions ? listId : undefined}
          onChange={(e) => onChange(e.target.value)}
        />
      )}
    </Field>
  );
  if (!suggestions) return input;
  return (
    <>
      {input}
      <datalist id={listId}>
        {suggestions.map((s) => (
          <option key={s} value={s} />
        ))}
      </datalist>
    </>
  );
}

/** Props of {@link TextAreaField}. */
export interface TextAreaFieldProps extends FieldProps {
  readonly value: string;
  readonly onChange?: (value: string) => void;
  readonly rows?: number;
  readonly maxLength?: number;
  readonly readOnly?: boolean;
  readonly mono?: boolean;
  readonly name?: string;
}

/** A multi-line text input. */
export function TextAreaField({ value, onChange, rows = 3, maxLength, readOnly, mono, name, ...field }: TextAreaFieldProps) {
  return (
    <Field {...field}>
      {(control) => (
        <textarea
          {...control}
          className={`input${mono ? " mono" : ""}`}
          name={name}
          value={value}
          rows={rows}
          maxLength={maxLength}
          readOnly={readOnly}
          required={field.required}
          onChange={(e) => onChange?.(e.target.value)}
        />
      )}
    </Field>
  );
}

/** An option of a select. */
export interface SelectOption {
  readonly value: string;
  readonly label: string;
}

/** Props of {@link SelectField}. */
export interface SelectFieldProps extends FieldProps {
  readonly value: string;
  readonly onChange: (value: string) => void;
  readonly options: readonly SelectOption[];
  readonly name?: string;
  readonly disabled?: boolean;
}

/** A select. */
export function SelectField({ value, onChange, options, name, disabled, ...field }: SelectFieldProps) {
  return (
    <Field {...field}>
      {(control) => (
        <select {...control} className="input" name={name} value={value} disabled={disabled} required={field.required} onChange={(e) => onChange(e.target.value)}>
          {options.map((o) => (
            <option key={o.value} value={o.value}>
              {o.label}
            </option>
          ))}
        </select>
      )}
    </Field>
  );
}

/** Props of {@link DurationField}. */
export interface DurationFieldProps extends FieldProps {
  readonly value: DurationValue;
  readonly onChange: (value: DurationValue) => void;
  readonly disabled?: boolean;
  readonly name?: string;
}

/**
 * A duration: an amount (labelled by the field's label) and its unit (a select labelled
 * "<label> unit"). lib/duration.ts turns the pair into milliseconds.
 */
export function DurationField({ value, onChange, disabled, name, ...field }: DurationFieldProps) {
  const unitId = useId();
  return (
    <Field {...field}>
      {(control) => (
        <span className="duration">
          <input
            {...control}
            className="input duration-amount"
            type="text"
            inputMode="decimal"
            autoComplete="off"
            name={name}
            value={value.amount}
            disabled={disabled}
            required={field.required}
            onChange={(e) => onChange({ amount: e.target.value, unit: value.unit })}
          />
          <label htmlFor={unitId} className="visually-hidden">
            {`${field.label} unit`}
          </label>
          <select
            id={unitId}
            className="input duration-unit"
            value={value.unit}
            disabled={disabled}
            onChange={(e) => onChange({ amount: value.amount, unit: e.target.value as DurationUnit })}
          >
            {DURATION_UNITS.map((u) => (
              <option key={u} value={u}>
                {UNIT_LABELS[u]}
              </option>
            ))}
          </select>
        </span>
      )}
    </Field>
  );
}

/** A checkbox with its label after it. */
export function CheckboxField({ label, checked, onChange, hint, disabled }: { label: string; checked: boolean; onChange: (checked: boolean) => void; hint?: ReactNode; disabled?: boolean }) {
  const id = useId();
  return (
    <div className="field field-check">
      <input id={id} type="checkbox" checked={checked} disabled={disabled} aria-describedby={hint ? `${id}-hint` : undefined} onChange={(e) => onChange(e.target.checked)} />
      <label htmlFor={id}>{label}</label>
      {hint ? (
        <div id={`${id}-hint`} className="field-hint">
          {hint}
        </div>
      ) : null}
    </div>
  );
}

/** A group of radio buttons in a fieldset with a legend. */
export function RadioGroup<V extends string>({ legend, name, value, onChange, options }: { legend: string; name: string; value: V; onChange: (value: V) => void; options: ReadonlyArray<{ value: V; label: string; hint?: string }> }) {
  const id = useId();
  return (
    <fieldset className="radio-group">
      <legend>{legend}</legend>
      {options.map((o) => (
        <div key={o.value} className="radio">
          <input id={`${id}-${o.value}`} type="radio" name={name} value={o.value} checked={value === o.value} onChange={() => onChange(o.value)} aria-describedby={o.hint ? `${id}-${o.value}-hint` : undefined} />
          <label htmlFor={`${id}-${o.value}`}>{o.label}</label>
          {o.hint ? (
            <div id={`${id}-${o.value}-hint`} className="field-hint">
              {o.hint}
            </div>
          ) : null}
        </div>
      ))}
    </fieldset>
  );
}
