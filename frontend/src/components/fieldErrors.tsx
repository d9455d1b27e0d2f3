import { ApiError } from "../api/client";

/** The reasons a 422 gave for `field`, and unless `exact` for anything inside it ("space.x"
 * holds "space.x.SpaceRange.low"). */
export function errorsAt(error: unknown, field: string, exact = false): string[] {
  if (!(error instanceof ApiError)) return [];
  return error.fields
    .filter((f) => f.field === field || (!exact && f.field.startsWith(`${field}.`)))
    .map((f) => f.message);
}

/** The API's reasons, shown under the input they are about. */
export function FieldNote(props: { error: unknown; field: string; exact?: boolean; extra?: string[] }) {
  const messages = [...errorsAt(props.error, props.field, props.exact), ...(props.extra ?? [])];
  if (messages.length === 0) return null;
  return (
    <span role="alert" data-testid={`field-error-${props.field}`} className="mt-1 block text-xs text-rose-300">
      {messages.join("; ")}
    </span>
  );
}
