// Form fields generated from option descriptions: a handler's options (GET /api/handlers) or a
// request schema of the OpenAPI document (the train form). Values are sent as typed; the server
// validates (the form has noValidate), and its `fields` mark the offending inputs.
import type { ApiError } from "../api/client";
import type { HandlerOption } from "../api/types";
import { Field } from "./ui";

export type Values = Record<string, unknown>;

export function defaults(options: Record<string, HandlerOption>): Values {
  return Object.fromEntries(Object.entries(options).map(([k, o]) => [k, o.default]));
}

/** The values that differ from the defaults (what a request needs to say). */
export function changed(options: Record<string, HandlerOption>, values: Values): Values {
  return Object.fromEntries(Object.entries(values).filter(([k, v]) => v !== undefined && v !== options[k]?.default));
}

function rangeText(o: HandlerOption): string {
  if (o.choices) return "";
  if (o.min != null && o.max != null) return `${o.min} – ${o.max}`;
  if (o.min != null) return `≥ ${o.min}`;
  if (o.max != null) return `≤ ${o.max}`;
  return "";
}

function parseNumber(text: string): unknown {
  if (text.trim() === "") return undefined;
  const n = Number(text);
  if (!Number.isFinite(n)) return text; // sent as typed: the server says what is allowed
  return n; // an int option given 2.5 is refused by the server, with its reason
}

export function OptionsForm({ options, values, onChange, error, prefix }: {
  options: Record<string, HandlerOption>;
  values: Values;
  onChange: (values: Values) => void;
  error: ApiError | null;
  prefix: string; // the name the API gives these values in `fields` ("config", "" for top level)
}) {
  const set = (k: string, v: unknown) => onChange({ ...values, [k]: v });
  return (
    <div class="options">
      {Object.entries(options).map(([k, o]) => {
        const name = prefix ? `${prefix}.${k}` : k;
        const range = rangeText(o);
        const help = [o.help, range && `range ${range}`, o.default !== undefined && o.default !== null
          ? `default ${JSON.stringify(o.default)}` : ""].filter(Boolean).join(" · ");
        const v = values[k];
        let input;
        if (o.type === "bool") {
          input = <input type="checkbox" name={name} checked={Boolean(v)} onChange={(e) => set(k, e.currentTarget.checked)} />;
        } else if (o.type === "choice" && o.choices) {
          const i = o.choices.findIndex((c) => c === v);
          input = (
            <select name={name} value={String(i)} onChange={(e) => set(k, o.choices![Number(e.currentTarget.value)])}>
              {o.choices.map((c, j) => <option value={String(j)}>{String(c)}</option>)}
            </select>
          );
        } else if (o.type === "int" || o.type === "float") {
          input = (
            <input type="number" name={name} step={o.type === "int" ? 1 : "any"}
              min={o.min ?? undefined} max={o.max ?? undefined}
              value={v === undefined || v === null ? "" : String(v)}
              onInput={(e) => set(k, parseNumber(e.currentTarget.value))} />
          );
        } else {
          input = <input type="text" name={name} value={v == null ? "" : String(v)} onInput={(e) => set(k, e.currentTarget.value)} />;
        }
        return <Field name={name} label={k} error={error} help={help}>{input}</Field>;
      })}
    </div>
  );
}

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  default?: unknown;
  description?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number | boolean;
  enum?: unknown[];
  $ref?: string;
  allOf?: JsonSchema[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  nullable?: boolean;
}

/** A request body's schema in the OpenAPI document, as options (nested objects become `a.b` keys). */
export function optionsFromSchema(doc: { components: { schemas: Record<string, JsonSchema> } }, name: string,
  skip: string[] = []): Record<string, HandlerOption> {
  const resolve = (s: JsonSchema): JsonSchema => {
    if (s.$ref) return resolve(doc.components.schemas[s.$ref.split("/").pop()!]);
    const inner = s.allOf?.[0] ?? s.anyOf?.find((x) => x.$ref || x.properties) ?? s.oneOf?.find((x) => x.$ref || x.properties);
    return inner ? { ...resolve(inner), default: s.default, description: s.description ?? resolve(inner).description } : s;
  };
  const out: Record<string, HandlerOption> = {};
  const walk = (schema: JsonSchema, prefix: string) => {
    for (const [k, raw] of Object.entries(schema.properties ?? {})) {
      const key = prefix + k;
      if (skip.includes(key)) continue;
      const s = resolve(raw);
      const type = Array.isArray(s.type) ? s.type.find((t) => t !== "null") : s.type;
      if (type === "object" || s.properties) {
        walk(s, `${key}.`);
        continue;
      }
      out[key] = {
        type: s.enum ? "choice" : type === "integer" ? "int" : type === "number" ? "float" : type === "boolean" ? "bool" : "str",
        default: s.default,
        help: s.description ?? "",
        min: s.minimum ?? (typeof s.exclusiveMinimum === "number" ? s.exclusiveMinimum : null),
        max: s.maximum ?? null,
        choices: s.enum ?? null,
      };
    }
  };
  walk(resolve(doc.components.schemas[name]), "");
  return out;
}

/** `{"a.b": 1, "c": 2}` → `{"a": {"b": 1}, "c": 2}` (undefined values left out). */
export function nest(values: Values): Values {
  const out: Values = {};
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined) continue;
    const parts = k.split(".");
    let at = out;
    for (const p of parts.slice(0, -1)) at = (at[p] ??= {}) as Values;
    at[parts[parts.length - 1]] = v;
  }
  return out;
}
