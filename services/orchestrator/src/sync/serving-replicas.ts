import type { Discovery } from "@pangea/rpc";

/**
 * The addresses of the serving replicas of `model` the registry lists
 * (--serving-sync discovery:<model>), read afresh on each call. Serving
 * announces itself as serving/<its --model-name>/<worker id>, so only that
 * model's replicas are this job's to push to.
 */
export function servingReplicasOf(discovery: Discovery, model: string): () => Promise<readonly string[]> {
  return async () => [...(await discovery.list("serving"))].filter(([key]) => key.startsWith(`${model}/`)).map(([, address]) => address);
}
