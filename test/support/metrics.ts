import { get } from "node:http";

/** A metric's value from a /metrics endpoint at `address`, null when absent (a connection each time: a kept-alive one may be closed under the request). */
export async function metricValue(address: string, name: string): Promise<number | null> {
  const text = await new Promise<string>((resolve, reject) => {
    get(`http://${address}/metrics`, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve(body));
    }).on("error", reject);
  });
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text);
  return m ? Number(m[1]) : null;
}
