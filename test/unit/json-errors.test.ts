import assert from 'node:assert/strict';
import { test } from 'node:test';
import { jsonSyntaxError } from '../../src/util/json.ts';

test('JSON syntax errors keep no excerpt of the input, in the words of V8 and of JavaScriptCore', () => {
  const messages = [
    // V8 (Node)
    `Unexpected token 'h', "{"password": hunter2}" is not valid JSON`,
    `Unexpected token 'h', ..."assword": hunter2, "a"... is not valid JSON`,
    // JavaScriptCore (Bun)
    'JSON Parse error: Unexpected identifier "hunter2"',
    'JSON Parse error: Unexpected identifier "hunter2 with "quotes" inside"',
  ];
  for (const message of messages) {
    const cleaned = jsonSyntaxError(new SyntaxError(message));
    assert.doesNotMatch(cleaned, /hunter2|assword/, cleaned);
    assert.ok(cleaned.length > 10, `some cause is left: ${cleaned}`);
  }
  try {
    JSON.parse('{"password": hunter2}');
  } catch (e) {
    assert.doesNotMatch(jsonSyntaxError(e), /hunter2/);
  }
});
