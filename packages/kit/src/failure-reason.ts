/**
 * A failure's reason with its numbers blanked, for "said again only if the reason changes": a deadline's elapsed time
 * or a timestamp in the text would otherwise make the same failure a new one every time. grpc-js follows a deadline
 * with a timing breakdown whose parts come and go by call ("name resolution: 0.0s" only on some), so only the
 * deadline itself is kept.
 */
export function reasonKey(message: string): string {
  return message.replace(/(Deadline exceeded after [\d.]+s)[^;]*/g, "$1").replace(/\d+(\.\d+)?/g, "#");
}
