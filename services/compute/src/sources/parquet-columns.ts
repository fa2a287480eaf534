import type { ColumnMetaData, FileMetaData, SchemaElement, SchemaTree } from "hyparquet";
import { parquetSchema } from "hyparquet";
import { printable } from "@pangea/kit";
import type { FeatureList } from "@pangea/features";

/** What a Parquet column's values are, as far as a feature is concerned. */
type ValueKind = "integer" | "number" | "float32" | "boolean" | "string" | "bytes" | "json" | "null" | { other: string };

interface ColumnShape {
  kind: ValueKind;
  /** A list of values (a LIST, or a repeated field) rather than one value per row. */
  list: boolean;
}

/**
 * Why a Parquet file's columns cannot hold what the feature list reads from
 * them, or null. Checked from the file's schema before any row is read: a
 * column of the wrong type made every row a bad record, and
 * --on-bad-record skip then dropped the file row by row.
 * Labels hold numbers or booleans; dense features numbers (or lists of
 * them); slots of type bytes strings or bytes, the others integers (a
 * DOUBLE column of whole numbers too: pandas writes integer columns with
 * nulls so); slots and dense features may be lists, labels not.
 */
export function columnTypeProblem(meta: FileMetaData, list: FeatureList): string | null {
  const root = parquetSchema(meta);
  const byName = new Map(root.children.map((c) => [c.element.name, c]));
  const problem = (name: string, what: string, expected: string, shape: ColumnShape): string =>
    `column '${printable(name, 80)}' ${what} ${describe(shape)}; ${expected}`;
  for (const l of list.labels) {
    const shape = shapeOf(byName.get(l.column));
    if (!shape || shape.kind === "json") continue;
    // pyarrow writes a column of nothing but nulls as type NULL: a slot or dense feature of it is empty, a label not.
    if (shape.list || !isNumeric(shape.kind)) return problem(l.column, `(label '${printable(l.name, 80)}') holds`, "a label column holds numbers or booleans, one per row", shape);
  }
  for (const [name] of list.denseByName) {
    const shape = shapeOf(byName.get(name));
    if (shape && shape.kind !== "json" && shape.kind !== "null" && !isNumeric(shape.kind)) return problem(name, "(dense) holds", "a dense feature's column holds numbers (INTEGER, FLOAT, DOUBLE, DECIMAL, BOOLEAN) or lists of them", shape);
  }
  for (const [name, s] of list.slotByName) {
    const shape = shapeOf(byName.get(name));
    if (!shape || shape.kind === "json" || shape.kind === "null") continue;
    if (s.kind === "bytes" && shape.kind !== "string" && shape.kind !== "bytes") {
      return problem(name, "(slot type bytes) holds", `a slot of type bytes holds strings or bytes${shape.kind === "integer" ? "; a slot of integers is type int64" : ""}`, shape);
    }
    // Not FLOAT: past 2^24 neighbouring ids are one value there (a DOUBLE's ids are checked by row, against 2^53).
    if (s.kind !== "bytes" && shape.kind !== "integer" && shape.kind !== "number") {
      const why = shape.kind === "string" || shape.kind === "bytes" ? "; a slot whose values are strings is type bytes" : shape.kind === "float32" ? " (a FLOAT holds integers exactly only up to 2^24: write ids as INT64)" : "";
      return problem(name, `(slot type ${s.kind}) holds`, `a slot of type ${s.kind} holds integers${why}`, shape);
    }
  }
  return null;
}

/** The top-level columns of `meta` that hold a list of values a row (a LIST, or a field repeated itself). */
export function listColumns(meta: FileMetaData): Set<string> {
  return new Set(parquetSchema(meta).children.filter((c) => shapeOf(c)?.list).map((c) => c.element.name));
}

/** The metadata of a row group's column chunks that belong to the `read` columns (a list's chunk is its column's). */
export function chunksRead(group: FileMetaData["row_groups"][number], read: ReadonlySet<string>): ColumnMetaData[] {
  return group.columns.flatMap((c) => (c.meta_data && read.has(c.meta_data.path_in_schema[0]!) ? [c.meta_data] : []));
}

function isNumeric(kind: ValueKind): boolean {
  return kind === "integer" || kind === "number" || kind === "float32" || kind === "boolean";
}

function describe(shape: ColumnShape): string {
  const kind = shape.kind === "float32" ? "FLOAT values" : typeof shape.kind === "string" ? `${shape.kind} values` : shape.kind.other;
  return shape.list ? `lists of ${kind}` : kind;
}

/** A top-level column's shape, or null for a column the file lacks (that is said elsewhere, with every missing one). */
function shapeOf(top: SchemaTree | undefined): ColumnShape | null {
  if (!top) return null;
  const e = top.element;
  if (top.children.length === 0) return { kind: leafKind(e), list: e.repetition_type === "REPEATED" };
  if (isList(e)) {
    // LIST: a repeated group of one element (three levels), or a repeated leaf (two, as older writers wrote).
    const repeated = top.children[0];
    if (!repeated || top.children.length !== 1) return { kind: { other: "a LIST of several fields" }, list: false };
    if (repeated.element.repetition_type !== "REPEATED") return { kind: { other: "a LIST whose field is not repeated" }, list: false };
    const element = repeated.children.length === 0 ? repeated : repeated.children.length === 1 ? repeated.children[0]! : null;
    if (!element) return { kind: { other: "lists of structs" }, list: false };
    if (element.children.length > 0) return { kind: { other: isList(element.element) ? "lists of lists" : "lists of structs" }, list: false };
    return { kind: leafKind(element.element), list: true };
  }
  const map = e.logical_type?.type === "MAP" || e.converted_type === "MAP" || e.converted_type === "MAP_KEY_VALUE";
  return { kind: { other: map ? "a MAP" : `a struct of ${top.children.length} fields` }, list: false };
}

/** A LIST as the library assembles one into lists of values (else it makes structs of it): as its isListLike. */
function isList(e: SchemaElement): boolean {
  return e.converted_type === "LIST";
}

function leafKind(e: SchemaElement): ValueKind {
  const logical = e.logical_type?.type;
  // JSON text is read as the values it holds (a number, a list, ...): each row's are checked as they are read.
  if (logical === "JSON" || e.converted_type === "JSON") return "json";
  if (logical === "STRING" || logical === "ENUM" || e.converted_type === "UTF8" || e.converted_type === "ENUM") return "string";
  // What the library reads as Date objects (a TIME, or a DATE only the logical type marks, it leaves integers).
  if (e.converted_type === "DATE" || e.converted_type === "TIMESTAMP_MILLIS" || e.converted_type === "TIMESTAMP_MICROS" || logical === "TIMESTAMP" || (e.type === "INT96" && !e.converted_type)) {
    return { other: `${e.converted_type ?? logical ?? e.type} values (dates and times are read as objects; write them as integers to use them)` };
  }
  if (logical === "NULL") return "null";
  if (logical === "INTERVAL" || logical === "VARIANT" || logical === "GEOMETRY" || logical === "GEOGRAPHY" || e.converted_type === "INTERVAL") return { other: `${logical ?? e.converted_type} values` };
  if (logical === "BSON" || e.converted_type === "BSON") return { other: "BSON values (which the Parquet reader does not decode)" };
  if (logical === "DECIMAL" || e.converted_type === "DECIMAL") return "number";
  if (logical === "FLOAT16") return "float32";
  switch (e.type) {
    case "BOOLEAN":
      return "boolean";
    case "INT32":
    case "INT64":
      return "integer";
    case "FLOAT":
      return "float32";
    case "DOUBLE":
      return "number";
    default:
      return "bytes";
  }
}
