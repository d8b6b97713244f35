/**
 * JSON.parse's message without the excerpt of the input it quotes: V8 says
 * `Unexpected token 'x', ..."password": hunter2"... is not valid JSON`, JavaScriptCore (Bun, what
 * the shipped CPI runs on) `JSON Parse error: Unexpected identifier "hunter2"`. Config files and
 * requests hold secrets, and a text that failed to parse cannot be learned by the redactor.
 */
export function jsonSyntaxError(e: unknown): string {
  const message = e instanceof Error ? e.message : String(e);
  return message
    .replace(/, (?:\.\.\.)?"[\s\S]*"(?:\.\.\.)? is not valid JSON$/, '')
    .replace(/ ?"[\s\S]*"/g, '');
}
