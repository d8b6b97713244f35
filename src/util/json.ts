/**
 * V8's JSON.parse message without the excerpt of the input it quotes
 * (`Unexpected token 'x', ..."password": hunter2"... is not valid JSON`): config files and
 * requests hold secrets, and a text that failed to parse cannot be learned by the redactor.
 */
export function jsonSyntaxError(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message.replace(/, (?:\.\.\.)?"[\s\S]*"(?:\.\.\.)? is not valid JSON$/, '');
}
