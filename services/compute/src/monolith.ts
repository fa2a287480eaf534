/**
 * Monolith record decoding as a library (`@pangea/compute/monolith`): serving
 * reads Monolith Instance/Example/ExampleBatch inputs with the same decoders
 * and feature lists training reads them with.
 */
export { SampleAssembler, decodeInstance, decodeExample, decodeExampleBatch } from "./formats/monolith-decode.js";
export { WireError } from "./formats/protowire.js";
export { loadFeatureList, compileFeatureList, type FeatureList } from "./features/feature-list.js";
export { encodeInstance, encodeExample, encodeExampleBatch, type PlainSample } from "./formats/monolith-encode.js";
