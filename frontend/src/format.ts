// Display formatting. Values stay the API's decimal strings until shown.

const usd = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
const usdSigned = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", signDisplay: "exceptZero" });
const usdCompact = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", notation: "compact", maximumFractionDigits: 1 });
const usdWhole = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD", maximumFractionDigits: 0 });

export function num(value: string | number | null | undefined): number | null {
  if (value === null || value === undefined || value === "") return null;
  const n = typeof value === "number" ? value : Number(value);
  return Number.isFinite(n) ? n : null;
}

export const DASH = "—";

export function money(value: string | number | null | undefined): string {
  const n = num(value);
  return n === null ? DASH : usd.format(n);
}

export function signedMoney(value: string | number | null | undefined): string {
  const n = num(value);
  return n === null ? DASH : usdSigned.format(n);
}

export function compactMoney(value: number): string {
  // Axis ticks: whole dollars up to $100k, compact beyond.
  return Math.abs(value) >= 100_000 ? usdCompact.format(value) : usdWhole.format(value);
}

/** A price: up to 4 decimals (the paper broker's fills), at least 2. */
export function price(value: string | number | null | undefined): string {
  const n = num(value);
  return n === null ? DASH : n.toLocaleString("en-US", { style: "currency", currency: "USD", minimumFractionDigits: 2, maximumFractionDigits: 4 });
}

/** A fraction (0.0123) as a percentage ("1.23%"). */
export function pct(value: string | number | null | undefined, digits = 2, signed = false): string {
  const n = num(value);
  if (n === null) return DASH;
  const s = (n * 100).toFixed(digits);
  return `${signed && n > 0 ? "+" : ""}${s}%`;
}

export function qty(value: string | number | null | undefined): string {
  const n = num(value);
  return n === null ? DASH : n.toLocaleString("en-US", { maximumFractionDigits: 6 });
}

export function ratio(value: number | null | undefined, digits = 2): string {
  return value === null || value === undefined || !Number.isFinite(value) ? DASH : value.toFixed(digits);
}

export function dateTime(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const d = new Date(iso);
  return Number.isNaN(d.getTime())
    ? iso
    : d.toLocaleString("en-US", { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
}

export function day(iso: string | null | undefined): string {
  if (!iso) return DASH;
  const d = new Date(iso.length === 10 ? `${iso}T12:00:00` : iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleDateString("en-US", { year: "numeric", month: "short", day: "numeric" });
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return DASH;
  const s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m`;
  return `${s}s`;
}

export function label(value: string | null | undefined): string {
  return value ? value.replace(/_/g, " ") : DASH;
}

export function pnlClass(value: string | number | null | undefined): string {
  const n = num(value);
  if (n === null || n === 0) return "text-slate-300";
  return n > 0 ? "text-emerald-400" : "text-rose-400";
}

/** A chart tick: "Mar '03". */
export function monthTick(iso: string): string {
  const d = new Date(`${iso.slice(0, 10)}T12:00:00`);
  return Number.isNaN(d.getTime()) ? iso : `${d.toLocaleDateString("en-US", { month: "short", day: "numeric" })} '${String(d.getFullYear()).slice(2)}`;
}

/** An optimization's objective value: a return as a percentage, a ratio to 4 decimals; ∞ when
 * the API says the value is infinite (JSON has no infinity: it sends null and a flag). */
export function objectiveValue(value: number | null | undefined, objective: string, infinite = false): string {
  if (infinite) return "∞";
  if (value === null || value === undefined || !Number.isFinite(value)) return DASH;
  return objective === "total_return" ? pct(value, 2, true) : value.toFixed(4);
}
