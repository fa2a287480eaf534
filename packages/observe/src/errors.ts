import { defineErrors } from "@pangea/kit";

export const ObserveErrors = defineErrors({
  OBSERVE_ERR_LISTEN: { status: "UNAVAILABLE", exit: 1, description: "the /metrics (and dashboard) HTTP server could not listen on its address (--metrics-port in use, --metrics-host not an address of this machine)" },
});
