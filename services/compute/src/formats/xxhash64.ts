import xxhash, { type XXHashAPI } from "xxhash-wasm";

/** XXH64 (WebAssembly), compiled once per process when first needed (zstd content checksums). */
let xxhashApi: Promise<XXHashAPI> | null = null;

export const xxhash64 = (): Promise<XXHashAPI> => (xxhashApi ??= xxhash());
