import { valueSnippet } from "@pangea/kit";
import { FeatureErrors } from "./errors.js";

/**
 * Monolith's v2 feature id layout, held as two 32-bit words (no BigInt on the
 * hot path):
 *
 *   bit 63      reserved, 0
 *   bits 62..48 slot id (15 bits)
 *   bits 47..0  hash of the value
 *
 * words[2i] = bits 31..0, words[2i+1] = bits 63..32.
 */
export const V2_SLOT_BITS = 15;
export const V2_MAX_SLOT = (1 << V2_SLOT_BITS) - 1;

/**
 * Monolith's v1 layout: bits 63..54 slot (10 bits), bits 53..0 hash. A v1
 * id converts to v2 by keeping its slot and the low 48 bits of its hash.
 */
export const V1_SLOT_BITS = 10;
export const V1_MAX_SLOT = (1 << V1_SLOT_BITS) - 1;

/** The slot of a v1 id whose high word is `hiWord`. */
export function slotOfV1(hiWord: number): number {
  return hiWord >>> 22;
}

/** High word of the v2 id of a v1 id whose high word is `hiWord` (the low word is unchanged). */
export function v1HiToV2Hi(hiWord: number): number {
  return ((slotOfV1(hiWord) << 16) | (hiWord & 0xffff)) >>> 0;
}

/** True when a v2 id's reserved top bit is clear. */
export function isValidV2(hiWord: number): boolean {
  return hiWord >>> 31 === 0;
}

export function checkSlot(slot: number, where: string): void {
  if (!Number.isInteger(slot) || slot < 0 || slot > V2_MAX_SLOT) {
    throw FeatureErrors.create("FEATURES_ERR_SLOT_RANGE", `${where}: slot ${slot} is outside the v2 layout's range 0..${V2_MAX_SLOT}`);
  }
}

/** Turns a 48-bit hash already stored at words[at], words[at+1] (hi 16 bits) into a v2 id of `slot`, in place. */
export function stampSlotV2(words: Uint32Array, at: number, slot: number): void {
  words[at + 1] = ((slot << 16) | (words[at + 1]! & 0xffff)) >>> 0;
}

/** The slot of a v2 id whose high word is `hiWord`: every reader of ids asks this function. */
export function slotOfV2(hiWord: number): number {
  return (hiWord >>> 16) & V2_MAX_SLOT;
}

export function idToBigInt(words: Uint32Array, i: number): bigint {
  return (BigInt(words[2 * i + 1]!) << 32n) | BigInt(words[2 * i]!);
}

/** Splits a 64-bit value given as a bigint (negative int64 values included) into its (lo, hi) words at out[at], out[at+1]. */
export function bigIntToWords(value: bigint, out: Uint32Array, at: number): void {
  const x = BigInt.asUintN(64, value);
  out[at] = Number(x & 0xffffffffn);
  out[at + 1] = Number(x >> 32n);
}

/**
 * A feature id as JSON gives it: a safe integer, or (beyond ±2^53, where
 * JSON numbers lose bits) a decimal string from -2^63 to 2^64 - 1. A
 * negative id is read by its 64 bits, as gRPC reads a DT_INT64 one (the
 * metadata's type); it has the top bit, which no v2 id has, so it matches
 * no row (serving counts it). Its unsigned decimal text, or null when it is
 * no 64-bit id.
 */
export function jsonIdText(x: unknown): string | null {
  if (typeof x === "number") return Number.isSafeInteger(x) ? (x >= 0 ? String(x) : String(BigInt.asUintN(64, BigInt(x)))) : null;
  if (typeof x !== "string" || !/^-?\d{1,20}$/.test(x)) return null;
  const v = BigInt(x);
  if (v >= 1n << 64n || v < -(1n << 63n)) return null;
  return v >= 0n ? x : String(BigInt.asUintN(64, v));
}

/** Why a value of a request's feature_ids cell (one id, or one of a cell's list of ids) is no id, for an error line. */
export function jsonIdProblem(x: unknown): string {
  if (Array.isArray(x)) return "a list inside the cell's list of ids; a cell is one id or one list of ids";
  // The number as JSON parsing rounded it: the digits sent are gone, so say that rather than call it no integer.
  // Up to 2^64 itself: ids from 2^64 - 1024 up parse to exactly 2^64.
  if (typeof x === "number" && Number.isInteger(x) && Math.abs(x) > Number.MAX_SAFE_INTEGER && x <= 2 ** 64 && x >= -(2 ** 63)) {
    return `feature id ${x} (as parsed) is at or beyond ±2^53, where a JSON number loses digits; send such ids as strings`;
  }
  return `feature id ${valueSnippet(x)} is not a 64-bit integer (-2^63 .. 2^64 - 1; send ids at or beyond ±2^53 as strings)`;
}
