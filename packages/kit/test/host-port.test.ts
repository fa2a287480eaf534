import { describe, expect, it } from "vitest";
import { DISCOVERY_RE, HOST_PORT_RE, address } from "../src/zod-fields.js";

describe("addresses to connect to", () => {
  it("take ports 1..65535 and nothing past them", () => {
    for (const ok of ["127.0.0.1:1", "host:9", "host:80", "host:8500", "host:10000", "host:59999", "host:64999", "host:65499", "host:65529", "host:65535", "[::1]:8500"]) expect(HOST_PORT_RE.test(ok), ok).toBe(true);
    for (const bad of ["host:0", "host:00", "host:08500", "host:65536", "host:65540", "host:65600", "host:66000", "host:70000", "host:99999", "host:100000", "host", "host:", ":8500", "a b:1"]) expect(HOST_PORT_RE.test(bad), bad).toBe(false);
    expect(address.safeParse("127.0.0.1:99999").error?.issues[0]?.message).toBe("expected host:port (a port 1..65535)");
  });

  it("hold for --discovery's etcd endpoints too", () => {
    expect(DISCOVERY_RE.test("etcd://a:2379,b:65535")).toBe(true);
    expect(DISCOVERY_RE.test("etcd://a:2379,b:65536")).toBe(false);
    expect(DISCOVERY_RE.test("static")).toBe(true);
    expect(DISCOVERY_RE.test("tf-config")).toBe(true);
  });
});
