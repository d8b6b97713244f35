// Profiling aid, preloaded into CPI processes by `npm run bench -- --profile` through
// NODE_OPTIONS=--require: records when each Engine API request starts, gets its headers and
// ends (ms since the process started), and when the process exits. It appends one JSON line
// per process to $BENCH_TRACE_FILE. Nothing in src/ knows about it.
const http = require('node:http');
const https = require('node:https');
const { appendFileSync } = require('node:fs');
const { performance } = require('node:perf_hooks');

const file = process.env.BENCH_TRACE_FILE;
const requests = [];
const marks = { preload: performance.now() };

function wrap(mod) {
  const original = mod.request;
  mod.request = function tracedRequest(...args) {
    const opts = typeof args[0] === 'object' && !(args[0] instanceof URL) ? args[0] : {};
    const entry = {
      method: opts.method ?? 'GET',
      path: String(opts.path ?? '').replace(/^\/v1\.\d+/, ''),
      start: performance.now(),
    };
    requests.push(entry);
    const req = original.apply(this, args);
    req.on('response', (res) => {
      entry.status = res.statusCode;
      entry.headers = performance.now();
      res.on('end', () => {
        entry.end = performance.now();
      });
    });
    return req;
  };
}
wrap(http);
wrap(https);

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
