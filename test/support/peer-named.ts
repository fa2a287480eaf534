import { expect } from "vitest";

/**
 * A refusal's text as compute writes it over plaintext: the sender a message claims named with the loopback address
 * its stream came from ("trainer-r0 (at 127.0.0.1:41906)"), the port whatever the client's was.
 */
export function fromPeer(details: string, sender: string): unknown {
  const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return expect.stringMatching(new RegExp(`^${escape(details).replaceAll(escape(sender), `${escape(sender)} \\(at 127\\.0\\.0\\.1:\\d+\\)`)}$`));
}
