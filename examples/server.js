// An HTTP evaluation service: POST a batch of student and teacher logits (float32, little-endian,
// row-major, student rows then teacher rows) with ?rows=&cols= and optional class labels as
// ?labels=1,4,2; the handler evaluates it with the async API, so large batches never block the event
// loop, and aborts the computation when the client disconnects.
//
//   node examples/server.js                       # listens on 127.0.0.1:8080 (or $PORT)
//   node examples/server.js --self-test           # starts, sends one request to itself, exits
'use strict';
const http = require('http');
const { DistillationLoss, MseLoss, KdError, AbortError } = require('kdloss');

const kd = new DistillationLoss(4, 0.7);
const kdNoLabels = new DistillationLoss(4, 1, new MseLoss()); // alpha 1: the hard term has no weight

async function evaluate(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const rows = Number(url.searchParams.get('rows'));
  const cols = Number(url.searchParams.get('cols'));
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  // Copy into an aligned buffer (a Buffer's byteOffset may not be a multiple of 4).
  const all = new Float32Array(body.byteLength / 4);
  new Uint8Array(all.buffer).set(body);
  const n = rows * cols;
  const student = { data: all.subarray(0, n), rows, cols };
  const teacher = { data: all.subarray(n, 2 * n), rows, cols };
  const labelParam = url.searchParams.get('labels');
  const labels = labelParam ? labelParam.split(',').map(Number) : new Int32Array(rows);

  const controller = new AbortController();
  res.on('close', () => controller.abort()); // client gone: stop computing
  const loss = labelParam ? kd : kdNoLabels;
  const r = await loss.forwardAsync(student, teacher, labels, { reduction: 'none', argmax: true, signal: controller.signal });
  let agree = 0;
  for (let i = 0; i < rows; i++) agree += r.studentArgmax[i] === r.teacherArgmax[i] ? 1 : 0;
  return { rows, loss: r.loss, soft: r.soft, hard: labelParam ? r.hard : null, agreement: agree / rows };
}

const server = http.createServer((req, res) => {
  if (req.method !== 'POST' || !req.url.startsWith('/evaluate')) {
    res.writeHead(404).end();
    return;
  }
  evaluate(req, res).then(
    (result) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result)),
    (err) => {
      if (err instanceof AbortError) return; // the client disconnected
      const status = err instanceof KdError ? 400 : 500;
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: err.message, code: err.code }));
    },
  );
});

const selfTest = process.argv.includes('--self-test');
server.listen(selfTest ? 0 : Number(process.env.PORT || 8080), '127.0.0.1', async () => {
  const base = `http://127.0.0.1:${server.address().port}`;
  console.log(`kdloss evaluation service on ${base}/evaluate`);
  if (!selfTest) return;
  const rows = 512;
  const cols = 100;
  const batch = new Float32Array(2 * rows * cols).map((_, i) => Math.sin(i * 0.37) * 3);
  const labels = Array.from({ length: rows }, (_, i) => i % cols).join(',');
  const res = await fetch(`${base}/evaluate?rows=${rows}&cols=${cols}&labels=${labels}`, {
    method: 'POST',
    body: Buffer.from(batch.buffer),
  });
  console.log(res.status, await res.json());
  const bad = await fetch(`${base}/evaluate?rows=${rows * 10}&cols=${cols}`, { method: 'POST', body: Buffer.from(batch.buffer) });
  console.log(bad.status, await bad.json());
  server.close();
});
