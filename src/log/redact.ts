/**
 * Keeps credentials out of logs and error messages. Secrets are learned from the config and
 * the request (values under keys that name a secret, passwords inside URLs, PEM private keys)
 * and every occurrence is replaced before a line leaves the process.
 */
const SECRET_WORDS = new Set([
  'password',
  'passwd',
  'pass',
  'passphrase',
  'secret',
  'token',
  'key',
  'private',
  'credential',
  'credentials',
]);

/** A key names a secret when one of its words does: `nats_password`, `private_key`, `apiToken`. */
export function isSecretKey(key: string): boolean {
  return key.split(/[_.\-\s]+|(?<=[a-z])(?=[A-Z])/).some((word) => SECRET_WORDS.has(word.toLowerCase()));
}
const URL_PASSWORD = /([a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)([^\s/]+)@/gi;
const PEM_PRIVATE_KEY = /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g;
const MIN_SECRET_LENGTH = 4;

export class Redactor {
  private readonly secrets = new Set<string>();

  /** Learns every secret inside a JSON-like value. */
  learn(value: unknown, underSecretKey = false, depth = 0): void {
    if (depth > 64) return;
    if (typeof value === 'string') {
      if (underSecretKey) this.add(value);
      for (const m of value.matchAll(URL_PASSWORD)) this.add(m[2] ?? '');
      for (const m of value.matchAll(PEM_PRIVATE_KEY)) this.add(m[0]);
      return;
    }
    if (Array.isArray(value)) {
      for (const item of value) this.learn(item, underSecretKey, depth + 1);
      return;
    }
    if (typeof value === 'object' && value !== null) {
      for (const [k, v] of Object.entries(value)) this.learn(v, underSecretKey || isSecretKey(k), depth + 1);
    }
  }

  add(secret: string): void {
    if (secret.length >= MIN_SECRET_LENGTH) {
      this.secrets.add(secret);
      // The same secret often appears JSON-escaped or URL-encoded in messages.
      this.secrets.add(JSON.stringify(secret).slice(1, -1));
      this.secrets.add(encodeURIComponent(secret));
    }
  }

  redact = (text: string): string => {
    let out = text.replace(PEM_PRIVATE_KEY, '<redacted private key>').replace(URL_PASSWORD, '$1<redacted>@');
    // Longest first, so a secret that contains another is replaced whole.
    const sorted = [...this.secrets]
      .filter((s) => s.length >= MIN_SECRET_LENGTH)
      .sort((a, b) => b.length - a.length);
    for (const s of sorted) if (out.includes(s)) out = out.split(s).join('<redacted>');
    return out;
  };
}
