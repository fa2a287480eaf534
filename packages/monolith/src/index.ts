export { WIRE_I32, WIRE_I64, WIRE_LEN, WIRE_VARINT, BatchSizeError, FitError, WireError, WireReader, wireShapeError } from "./protowire.js";
export { WireWriter } from "./protowire-writer.js";
export { LABEL_FEATURE, LINE_ID_FEATURE, MAX_EXAMPLE_BATCH, SampleAssembler, WEIGHT_FEATURE, decodeExample, decodeExampleBatch, decodeInstance, decodeRecordOfKind } from "./monolith-decode.js";
export type { MessageKind } from "./monolith-decode.js";
export { encodeExample, encodeExampleBatch, encodeInstance, v2ToV1Words } from "./monolith-encode.js";
export type { PlainSample } from "./monolith-encode.js";
