import type { FeatureList } from "@pangea/features";

/** The most slots a warning names; the rest are counted. */
const NAMED = 8;

/**
 * A declared slot that no record gave an id trains on nothing, and serving
 * takes it as always missing: nearly always a feature list that names the
 * data otherwise (a misspelt feature or column, fids of another slot
 * number). `idCounts` are the record cache's ids per slot, in column order;
 * `why` says what to check for the format. Null when every slot got ids or
 * the counts are not known (an older cache).
 */
export function emptySlotsWarning(idCounts: readonly number[] | undefined, list: FeatureList, records: number, why: string): string | null {
  if (!idCounts || idCounts.length !== list.slotIds.length) return null;
  const nameOf = new Map<number, string>();
  for (const [name, s] of list.slotByName) nameOf.set(s.column, name);
  const empty: string[] = [];
  idCounts.forEach((n, column) => {
    if (n === 0) empty.push(`'${nameOf.get(column) ?? "?"}' (slot ${list.slotIds[column]})`);
  });
  if (empty.length === 0) return null;
  const shown = empty.length > NAMED ? `${empty.slice(0, NAMED).join(", ")} and ${empty.length - NAMED} more` : empty.join(", ");
  const several = empty.length > 1;
  return `slot${several ? "s" : ""} ${shown} of the feature list ${several ? "hold" : "holds"} no id in any of the ${records} records read: ${several ? "they train" : "it trains"} on nothing and serving takes ${several ? "them" : "it"} as missing; ${why}`;
}

/**
 * A declared dense feature that is 0 (or missing, which reads as 0) in every
 * record is a constant input the model learns nothing from: nearly always a
 * name the data does not use. `nonzero` counts the records whose value is
 * not 0, per dense column (a feature of size k spans k columns). Null when
 * every feature has a value somewhere or the counts are not known (an older cache).
 */
export function emptyDenseWarning(nonzero: readonly number[] | undefined, list: FeatureList, records: number, why: string): string | null {
  if (!nonzero || nonzero.length !== list.numDense) return null;
  const empty: string[] = [];
  for (const [name, d] of list.denseByName) {
    if (nonzero.slice(d.offset, d.offset + d.size).every((n) => n === 0)) empty.push(`'${name}'`);
  }
  if (empty.length === 0) return null;
  const shown = empty.length > NAMED ? `${empty.slice(0, NAMED).join(", ")} and ${empty.length - NAMED} more` : empty.join(", ");
  const several = empty.length > 1;
  return `dense feature${several ? "s" : ""} ${shown} of the feature list ${several ? "are" : "is"} 0 or missing in every one of the ${records} records read: ${several ? "they train" : "it trains"} on nothing; ${why}`;
}

/**
 * The warning for dense features of several values whose last ones are 0 or missing in every record while the first
 * are not: the feature list declares the feature larger than the records give it (a vector of 3 declared as 5 trains
 * two inputs on nothing). Null when there are none or the counts are not known.
 */
export function shortDenseWarning(nonzero: readonly number[] | undefined, list: FeatureList, records: number): string | null {
  if (!nonzero || nonzero.length !== list.numDense) return null;
  const short: string[] = [];
  for (const [name, d] of list.denseByName) {
    const counts = nonzero.slice(d.offset, d.offset + d.size);
    let given = d.size;
    while (given > 0 && counts[given - 1] === 0) given--;
    if (given > 0 && given < d.size) short.push(`'${name}' (${given + 1 < d.size ? `values ${given + 1} to ${d.size}` : `value ${d.size}`} of ${d.size})`);
  }
  if (short.length === 0) return null;
  const shown = short.length > NAMED ? `${short.slice(0, NAMED).join(", ")} and ${short.length - NAMED} more` : short.join(", ");
  return `dense feature${short.length > 1 ? "s" : ""} ${shown} of the feature list ${short.length > 1 ? "are" : "is"} 0 or missing there in every one of the ${records} records read: if the records give fewer values, the feature list's size is larger than theirs`;
}
