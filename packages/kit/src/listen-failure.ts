/**
 * Why a server could not listen, in a few words and the system's code
 * (`address already in use (EADDRINUSE)`), from Node's error (`listen
 * EADDRINUSE: address already in use 127.0.0.1:8501`) or a library's message
 * that quotes one (grpc-js: `No address added ... [listen EADDRINUSE: ...]`);
 * the whole message where it quotes none.
 */
export function listenFailureReason(err: Error): string {
  const why = /listen (E[A-Z]+): ([^\]]+?)(?: \S+:\d+)?(?:\]|$)/.exec(err.message);
  return why ? `${why[2]} (${why[1]})` : err.message;
}
