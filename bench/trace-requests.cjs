// Profiling aid, preloaded into CPI processes by `npm run bench -- --profile` through
// NODE_OPTIONS=--require: records when each Engine API request starts, gets its first answer
// bytes and its last (ms since the process started), and when the process exits. It appends one JSON line
// per process to $BENCH_TRACE_FILE. Nothing in src/ knows about it.
const net = require('node:net');
const { appendFileSync } = require('node:fs');
const { performance } = require('node:perf_hooks');

const file = process.env.BENCH_TRACE_FILE;
const requests = [];
const marks = { preload: performance.now() };

// The CPI speaks HTTP/1.1 on its sockets itself (src/backends/docker/engine/http1.ts): a write that
// starts with a request line opens an entry; the socket's first answer bytes give its status and
// header time, its last bytes before the next request (or the exit) its end.
const REQUEST_LINE = /^(GET|POST|PUT|DELETE|HEAD) (\S+) HTTP\/1\.1\r\n/;
const originalWrite = net.Socket.prototype.write;
net.Socket.prototype.write = function tracedWrite(chunk, ...rest) {
  const text =
    typeof chunk === 'string'
      ? chunk.slice(0, 2048)
      : Buffer.isBuffer(chunk)
        ? chunk.subarray(0, 2048).toString('latin1')
        : '';
  const line = REQUEST_LINE.exec(text);
  if (line) {
    const entry = { method: line[1], path: line[2].replace(/^\/v1\.\d+/, ''), start: performance.now() };
    requests.push(entry);
    this.__traceEntry = entry;
    if (!this.__traced) {
      this.__traced = true;
      this.on('data', (data) => {
        const current = this.__traceEntry;
        if (!current) return;
        if (current.headers === undefined) {
          current.headers = performance.now();
          current.status = Number(
            /^HTTP\/1\.[01] (\d{3})/.exec(data.subarray(0, 16).toString('latin1'))?.[1] ?? 0,
          );
        }
        current.end = performance.now();
      });
    }
  }
  return originalWrite.call(this, chunk, ...rest);
};

process.stdin.once('end', () => {
  marks.stdinEnd = performance.now();
});

process.on('exit', () => {
  if (!file) return;
  const round = (x) => (x === undefined ? undefined : Math.round(x * 10) / 10);
  const t = performance.nodeTiming;
  appendFileSync(
    file,
    `${JSON.stringify({
      tag: process.env.BENCH_TRACE_TAG ?? '',
      pid: process.pid,
      bootstrap: round(t.bootstrapComplete),
      preload: round(marks.preload),
      stdinEnd: round(marks.stdinEnd),
      exit: round(performance.now()),
      requests: requests.map((r) => ({
        method: r.method,
        path: r.path,
        status: r.status,
        start: round(r.start),
        headers: round(r.headers),
        end: round(r.end),
      })),
    })}\n`,
  );
});
