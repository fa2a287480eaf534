import { defineErrors } from "@pangea/kit";

/** The errors of calls between the processes: reaching peers, discovery, and transport security. */
export const RpcErrors = defineErrors({
  RPC_ERR_UNREACHABLE: { status: "UNAVAILABLE", exit: 3, description: "a peer did not become reachable in time" },
  RPC_ERR_WRONG_PEER: { status: "FAILED_PRECONDITION", exit: 1, description: "what answers at a peer's address is a server of the cluster, but of another role than expected (its certificate says which)" },
  RPC_ERR_PEER_FAILED: { status: "UNAVAILABLE", exit: 1, description: "a call to a peer failed" },
  RPC_ERR_LISTEN: { status: "UNAVAILABLE", exit: 1, description: "a server could not listen on its address (the port in use, the host not an address of this machine)" },
  RPC_ERR_DISCOVERY: { status: "FAILED_PRECONDITION", exit: 2, description: "service discovery is misconfigured (TF_CONFIG, --discovery)" },
  RPC_ERR_REGISTRY: { status: "UNAVAILABLE", exit: 3, description: "the service registry (etcd) cannot be reached or refused a call" },
  RPC_ERR_TLS_FILES: { status: "FAILED_PRECONDITION", exit: 2, description: "the TLS directory lacks a file, or holds one that is not a valid certificate of the cluster CA" },
  RPC_ERR_UNAUTHENTICATED: { status: "UNAUTHENTICATED", exit: 1, description: "a call came without the credentials its method requires" },
  RPC_ERR_PERMISSION_DENIED: { status: "PERMISSION_DENIED", exit: 1, description: "a call's certificate does not carry a role allowed to make it" },
});
