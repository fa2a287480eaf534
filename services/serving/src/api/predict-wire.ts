import { WireError, WireReader, WIRE_LEN } from "@pangea/monolith";

/** PredictRequest's `map<string, TensorProto> inputs = 2`; a map entry's key is field 1, its value field 2. */
const INPUTS_FIELD = 2;
const ENTRY_KEY = 1;
const ENTRY_VALUE = 2;

/**
 * The key of the first `inputs` entry of an encoded PredictRequest that
 * carries no TensorProto, or null. protobufjs cannot turn such an entry into
 * an object (it throws its own internal TypeError), so a request that fails
 * to decode is walked here to tell its sender which input is empty.
 */
export function inputWithoutTensor(bytes: Uint8Array): string | null {
  const r = new WireReader(bytes);
  try {
    while (!r.done()) {
      const tag = r.tag();
      if (tag >>> 3 !== INPUTS_FIELD || (tag & 7) !== WIRE_LEN) {
        r.skip(tag & 7);
        continue;
      }
      const entry = r.sub();
      let key = "";
      let valued = false;
      while (!entry.done()) {
        const t = entry.tag();
        if (t >>> 3 === ENTRY_KEY && (t & 7) === WIRE_LEN) {
          const { start, end } = entry.bytes();
          key = Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString("utf8");
        } else {
          if (t >>> 3 === ENTRY_VALUE) valued = true;
          entry.skip(t & 7);
        }
      }
      if (!valued) return key;
    }
    return null;
  } catch (err) {
    // Bytes that do not walk as a message: protobufjs's own reason stands.
    if (err instanceof WireError) return null;
    throw err;
  }
}
