/**
 * A failure's reason with its numbers blanked, for "said again only if the reason changes": a deadline's elapsed time
 * or a timestamp in the text would otherwise make the same failure a new one every time.
 */
export function reasonKey(message: string): string {
  return message.replace(/\d+(\.\d+)?/g, "#");
}
