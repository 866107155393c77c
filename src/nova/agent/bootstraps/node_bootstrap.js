'use strict';
// Nova's Node.js worker: runs user handlers inside the function's own node process.
//
// Started by the Nova agent (see nova/agent/worker.py for the fd layout):
//   persistent:  node node_bootstrap.js --handler MOD.FN --resp-fd N
//     stdin carries one JSON request line per invocation (process.stdin is swapped for an
//     empty stream so user code cannot read it). fds 1 and 2 are append-only capture files
//     shared with the agent, so console.*, process.stdout.write and child processes that
//     inherit stdio are all captured; after each call their tails become "stdout"/"stderr"
//     and they are truncated. Result lines go to fd N with fs.writeSync (a pipe node never
//     touches otherwise, so it stays blocking): first {"ready":true}, then one
//     {"id","output","error","stdout","stderr"} per request.
//   process:     node node_bootstrap.js --handler MOD.FN --resp-fd N --once FILE
//     runs the request in FILE, writes {"id","output","error"} to fd N and exits.
//   direct:      node node_bootstrap.js --handler MOD.FN --resp-fd N --lane-fd L --state-fd S
//                --max-message-bytes M
//     persistent, but this process reads Exec and Ping frames from the host connection (fd L)
//     and writes their Resp frames itself (see nova/agent/direct.py for the shared state file
//     S and the handback). A watchdog thread sends this process SIGALRM at a call's deadline,
//     which ends it wherever the handler is stuck; the agent reports Function.Timeout.
//   pre-started: node node_bootstrap.js --prestart 1 --resp-fd N [direct-mode flags]
//     started before any function is known (nova/agent/prestart.py): waits for one JSON line
//     on stdin {"handler", "env", "cwd"}, becomes that function's worker (environment, working
//     directory, module confinement) and goes on as above.
// The handler module is loaded once and cached; Reload restarts the worker, so the require
// cache is always fresh. Import errors, a missing handler and unserialisable results are
// reported per invocation; the worker stays alive.

const fs = require('fs');
const path = require('path');
const { Readable } = require('stream');
const { pathToFileURL } = require('url');

const CAPTURE_LIMIT = 64 * 1024; // keep in step with nova/agent/capture.py
const IMPORT_MODULE_ERROR = 'Runtime.ImportModuleError'; // keep in step with nova/agent/errors.py
const HANDLER_NOT_FOUND = 'Runtime.HandlerNotFound';
const SERIALIZATION_ERROR = 'Runtime.SerializationError';

function parseArgs(argv) {
  const options = {};
  for (let i = 0; i + 1 < argv.length; i += 2) options[argv[i].replace(/^--/, '')] = argv[i + 1];
  if (!(options.handler || options.prestart) || !options['resp-fd']) {
    process.stderr.write('usage: node_bootstrap.js --handler MOD.FN --resp-fd N [--once FILE]\n');
    process.exit(2);
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const respFd = Number(options['resp-fd']);
const env = process.env;
// What the function is: known at start, or once a pre-started worker is told (specialise).
let codeDir, functionName, functionVersion, memoryLimitInMB, defaultTimeoutMs;
let modulePath, functionKey;

// A function sees its own code and node_modules, never the host's modules: require() would
// also search NODE_PATH, ~/.node_modules, ~/.node_libraries, <prefix>/lib/node (Debian's node
// adds /usr/share/nodejs and /usr/lib/nodejs) and node_modules in every directory above the
// code; bare names resolve only inside the code directory. (import of a bare name never
// searches global folders; it walks the directories above the code, which inside a sandbox
// hold no node_modules.)
function confineRequire(root) {
  const Module = require('module');
  const inside = (dir) => dir === root || dir.startsWith(root + path.sep);
  const relative = /^\.\.?(\/|$)/;
  const lookupPaths = Module._resolveLookupPaths;
  Module._resolveLookupPaths = function resolveLookupPaths(request, parent) {
    const paths = lookupPaths.call(this, request, parent);
    if (!Array.isArray(paths) || relative.test(request)) return paths;
    return paths.filter(inside);
  };
}

function configure(handler) {
  codeDir = env.NOVA_CODE_DIR || process.cwd();
  functionName = env.NOVA_FUNCTION_NAME || '';
  functionVersion = env.NOVA_FUNCTION_VERSION || '';
  memoryLimitInMB = Number(env.NOVA_MEMORY_LIMIT_MB || 0);
  defaultTimeoutMs = Number(env.NOVA_TIMEOUT_S || 30) * 1000;
  const dot = handler.lastIndexOf('.');
  modulePath = handler.slice(0, dot);
  functionKey = handler.slice(dot + 1);
  confineRequire(path.resolve(codeDir));
}

// A pre-started worker: block on stdin for the function it becomes (nothing else runs yet).
function specialise() {
  writeAll(respFd, '{"prestarted":true}\n');
  const chunks = [];
  const buffer = Buffer.alloc(65536);
  for (;;) {
    const n = fs.readSync(0, buffer, 0, buffer.length, null);
    if (n === 0) process.exit(0); // the agent stopped before any function came
    chunks.push(Buffer.from(buffer.subarray(0, n)));
    if (buffer[n - 1] === 10) break;
  }
  const order = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  for (const key of Object.keys(env)) delete env[key];
  Object.assign(env, order.env);
  process.chdir(order.cwd);
  configure(order.handler);
}

function errorObject(type, message, stack) {
  return { type, message, stack: stack || [] };
}

function userStack(err) {
  if (!err || typeof err.stack !== 'string') return [];
  return err.stack
    .split('\n')
    .filter((line) => /^\s+at /.test(line))
    .map((line) => line.trim())
    .filter((line) => !line.includes(__filename) && !line.includes('node:internal'));
}

function describe(err) {
  if (err && typeof err === 'object' && typeof err.message === 'string') {
    return errorObject(String(err.name || 'Error'), err.message, userStack(err));
  }
  return errorObject('Error', typeof err === 'string' ? err : String(err), []);
}

let handlerFn = null;
let loadError = null; // the failed load's error, reported by the next invocation

async function importModule() {
  const base = path.resolve(codeDir, modulePath);
  if (fs.existsSync(base + '.mjs')) return import(pathToFileURL(base + '.mjs').href);
  try {
    return require(base);
  } catch (err) {
    if (err && err.code === 'ERR_REQUIRE_ESM') return import(pathToFileURL(require.resolve(base)).href);
    throw err;
  }
}

async function load() {
  let mod;
  try {
    mod = await importModule();
  } catch (err) {
    const detail = err && err.message ? err.message : String(err);
    loadError = errorObject(IMPORT_MODULE_ERROR, `Unable to import module '${modulePath}': ${detail}`, userStack(err));
    return;
  }
  let fn = mod ? mod[functionKey] : undefined;
  if (typeof fn !== 'function' && mod && mod.default) fn = mod.default[functionKey];
  if (typeof fn !== 'function') {
    loadError = errorObject(HANDLER_NOT_FOUND, `Handler '${functionKey}' missing on module '${modulePath}'`);
    return;
  }
  handlerFn = fn;
}

// The invocation's id as the function sees it; request.id only matches the reply.
function visibleRequestId(request) {
  const id = request.request_id === undefined ? request.id : request.request_id;
  return id === undefined || id === null ? '' : String(id);
}

// The traceparent in Lambda's X-Ray header form (nova.agent.environment.amzn_trace_id).
function amznTraceId(traceParent) {
  const match = /^([0-9a-fA-F]{2})-([0-9a-fA-F]{32})-([0-9a-fA-F]{16})-([0-9a-fA-F]{2})$/.exec(traceParent);
  if (match === null) return null;
  const sampled = parseInt(match[4], 16) & 1;
  return `Root=1-${match[2].slice(0, 8)}-${match[2].slice(8)};Parent=${match[3]};Sampled=${sampled}`;
}

function makeContext(request) {
  const deadline = Number(request.deadline_ms) || Date.now() + defaultTimeoutMs;
  const id = visibleRequestId(request);
  return {
    requestId: id,
    awsRequestId: id,
    functionName,
    functionVersion,
    memoryLimitInMB,
    invokedFunctionArn: `arn:nova:function:${functionName}`,
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `nova/${functionVersion}/${process.pid}`,
    clientContext: parseClientContext(request.client_context),
    identity: undefined,
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
}

// X-Amz-Client-Context as the caller sent it (a JSON object), or undefined.
function parseClientContext(text) {
  if (typeof text !== 'string' || !text) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function call(fn, event, context) {
  if (fn.length < 3) return fn(event, context);
  // A Lambda-style callback handler: (event, context, callback).
  return new Promise((resolve, reject) => {
    const result = fn(event, context, (err, value) => (err ? reject(err) : resolve(value)));
    if (result && typeof result.then === 'function') result.then(resolve, reject);
  });
}

// Resolves to {output: JSON text, error: null} or {output: 'null', error: {type, message, stack}}.
async function invoke(request) {
  if (handlerFn === null) {
    if (loadError === null) await load();
    const error = loadError;
    loadError = null;
    if (error !== null) return { output: 'null', error };
  }
  let result;
  try {
    result = call(handlerFn, request.event === undefined ? null : request.event, makeContext(request));
    if (result && typeof result.then === 'function') result = await result;
  } catch (err) {
    return { output: 'null', error: describe(err) };
  }
  try {
    const output = JSON.stringify(result);
    return { output: output === undefined ? 'null' : output, error: null };
  } catch (err) {
    return { output: 'null', error: errorObject(SERIALIZATION_ERROR, `Unable to stringify response: ${err.message}`) };
  }
}

function writeAll(fd, text) {
  const data = Buffer.from(text, 'utf8');
  let offset = 0;
  while (offset < data.length) offset += fs.writeSync(fd, data, offset, data.length - offset);
}

function drainCapture(fd) {
  try {
    const size = fs.fstatSync(fd).size;
    if (!size) return '';
    const keep = Math.min(size, CAPTURE_LIMIT);
    const data = Buffer.allocUnsafe(keep);
    const got = fs.readSync(fd, data, 0, keep, size - keep);
    fs.ftruncateSync(fd, 0);
    const text = data.toString('utf8', 0, got);
    return size > keep ? `[nova: ${size - keep} earlier bytes truncated]\n${text}` : text;
  } catch (err) {
    return `[nova: output not captured: ${err.message}]`;
  }
}

let perCallKeys = [];
function applyEnv(vars) {
  for (const key of perCallKeys) if (!(key in vars)) delete env[key];
  for (const key of Object.keys(vars)) env[key] = vars[key];
  perCallKeys = Object.keys(vars);
}

function resultLine(request, result, captures) {
  const id = JSON.stringify(request.id === undefined ? null : request.id);
  const error = result.error === null ? 'null' : JSON.stringify(result.error);
  let line = `{"id":${id},"output":${result.output},"error":${error}`;
  if (captures) line += `,"stdout":${JSON.stringify(captures[0])},"stderr":${JSON.stringify(captures[1])}`;
  return line + '}\n';
}

async function handleLine(line) {
  const request = JSON.parse(line);
  applyEnv(request.env || {});
  const result = await invoke(request);
  writeAll(respFd, resultLine(request, result, [drainCapture(1), drainCapture(2)]));
}

function serve() {
  const input = process.stdin;
  Object.defineProperty(process, 'stdin', { value: Readable.from([]), configurable: true, writable: true });
  input.setEncoding('utf8');
  const lines = [];
  let pending = '';
  let busy = false;
  async function pump() {
    busy = true;
    while (lines.length) await handleLine(lines.shift());
    busy = false;
  }
  input.on('data', (chunk) => {
    pending += chunk;
    let end;
    while ((end = pending.indexOf('\n')) !== -1) {
      lines.push(pending.slice(0, end));
      pending = pending.slice(end + 1);
    }
    if (!busy) pump();
  });
  input.on('end', () => process.exit(0));
}

async function runOnce(file) {
  const request = JSON.parse(fs.readFileSync(file, 'utf8'));
  applyEnv(request.env || {});
  const result = await invoke(request);
  writeAll(respFd, resultLine(request, result, null));
  // stdout/stderr are pipes here; let them flush before leaving timers the handler set behind.
  process.stdout.write('', () => process.stderr.write('', () => process.exit(0)));
}

// -- direct mode: keep in step with nova/agent/direct.py and nova/agent/protocol.py ----------
const PHASE_READING = 1;
const PHASE_RUNNING = 2;
const PHASE_REPLYING = 3;
const PHASE_IDLE = 0;
const PHASE_HANDBACK = 4;
const STATE_HEAD = 16; // <BxxxId: phase, 3 pad bytes, uint32 length, float64 monotonic start
const STATE_ROOM = 1024; // the head plus the running call's frame id; handed-back bytes follow
const MSG_EXEC = 2;
const MSG_RESP = 3;
const MSG_PING = 4;
const RESPONSE_TOO_LARGE = 'Runtime.ResponseTooLarge';

function monotonicSeconds() {
  return Number(process.hrtime.bigint()) / 1e9; // CLOCK_MONOTONIC, as Python's time.monotonic
}

// Lone surrogates: JSON.stringify escapes them (\udXXX), which strict peers reject. Only lone
// ones are ever escaped, so every such escape not itself escaped becomes U+FFFD.
const LONE_SURROGATE = /(?<!\\)((?:\\\\)*)\\ud[89a-f][0-9a-f]{2}/gi;

function wellFormed(json) {
  return json.includes('\\ud') ? json.replace(LONE_SURROGATE, '$1\\ufffd') : json;
}

function startWatchdog(deadlines) {
  const { Worker } = require('worker_threads');
  const source = `
    const { workerData } = require('worker_threads');
    const deadline = new Float64Array(workerData.deadlines);
    const sleeper = new Int32Array(new SharedArrayBuffer(4));
    for (;;) {
      const due = deadline[0];
      const now = Date.now();
      if (due && now >= due) process.kill(process.pid, 'SIGALRM');
      Atomics.wait(sleeper, 0, 0, due ? Math.max(1, due - now) : workerData.idleMs);
    }`;
  // Idle, it wakes once per timeout: a call that starts meanwhile is looked at by its deadline.
  // Not unref'd: it also keeps the event loop alive under a handler whose promise never
  // settles, so that call times out instead of node exiting with nothing left to do.
  new Worker(source, { eval: true, workerData: { deadlines, idleMs: defaultTimeoutMs } });
}

class DirectLane {
  constructor(laneFd, stateFd, maxBytes) {
    this.fd = laneFd;
    this.stateFd = stateFd;
    this.max = maxBytes;
    this.deadlines = new SharedArrayBuffer(8);
    this.deadline = new Float64Array(this.deadlines);
    this.phase = Buffer.alloc(1);
  }

  setPhase(phase) {
    this.phase[0] = phase;
    fs.writeSync(this.stateFd, this.phase, 0, 1, 0);
  }

  readExactly(size) {
    const buffer = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const n = fs.readSync(this.fd, buffer, got, size - got, null);
      if (n === 0) break;
      got += n;
    }
    return got === size ? buffer : buffer.subarray(0, got);
  }

  handBack(consumed) {
    fs.writeSync(this.stateFd, consumed, 0, consumed.length, STATE_ROOM);
    const head = Buffer.alloc(STATE_HEAD);
    head.writeUInt8(PHASE_HANDBACK, 0);
    head.writeUInt32LE(consumed.length, 4);
    fs.writeSync(this.stateFd, head, 0, STATE_HEAD, 0);
    process.exit(0);
  }

  reply(idJson, fields) {
    const body = Buffer.from(wellFormed(`{"type":${MSG_RESP},"id":${idJson}${fields}}`), 'utf8');
    const frame = Buffer.allocUnsafe(4 + body.length);
    frame.writeUInt32BE(body.length, 0);
    body.copy(frame, 4);
    this.setPhase(PHASE_REPLYING);
    let offset = 0;
    while (offset < frame.length) offset += fs.writeSync(this.fd, frame, offset, frame.length - offset);
    this.setPhase(PHASE_IDLE);
  }

  async serve() {
    writeAll(respFd, '{"ready":true}\n');
    fs.closeSync(respFd);
    Object.defineProperty(process, 'stdin', { value: Readable.from([]), configurable: true, writable: true });
    startWatchdog(this.deadlines);
    for (;;) {
      const header = this.readExactly(4);
      if (header.length < 4) this.handBack(header); // EOF: the agent ends the instance
      const length = header.readUInt32BE(0);
      if (length > this.max) this.handBack(header); // the agent refuses it and closes
      this.setPhase(PHASE_READING);
      const body = this.readExactly(length);
      const request = body.length === length ? parseRequest(body) : null;
      const idJson = request ? JSON.stringify(request.id === undefined ? null : request.id) : '';
      if (request === null || Buffer.byteLength(idJson) > STATE_ROOM - STATE_HEAD) {
        this.handBack(Buffer.concat([header, body])); // the agent answers what this cannot
      } else if (request.type === MSG_PING) {
        this.reply(idJson, ',"ok":true');
      } else {
        await this.exec(request, idJson);
      }
    }
  }

  async exec(request, idJson) {
    const started = monotonicSeconds();
    const id = Buffer.from(idJson, 'utf8');
    fs.writeSync(this.stateFd, id, 0, id.length, STATE_HEAD);
    const head = Buffer.alloc(STATE_HEAD);
    head.writeUInt8(PHASE_RUNNING, 0);
    head.writeUInt32LE(id.length, 4);
    head.writeDoubleLE(started, 8);
    fs.writeSync(this.stateFd, head, 0, STATE_HEAD, 0);
    const vars = { NOVA_REQUEST_ID: visibleRequestId(request) };
    if (typeof request.trace_parent === 'string') {
      vars.NOVA_TRACE_PARENT = request.trace_parent;
      const amzn = amznTraceId(request.trace_parent);
      if (amzn !== null) vars._X_AMZN_TRACE_ID = amzn;
    }
    applyEnv(vars);
    this.deadline[0] = Number(request.deadline_ms) || Date.now() + defaultTimeoutMs;
    const result = await invoke(request);
    this.deadline[0] = 0;
    const stdout = JSON.stringify(drainCapture(1));
    const stderr = JSON.stringify(drainCapture(2));
    const duration = ((monotonicSeconds() - started) * 1000).toFixed(3);
    const error = result.error === null ? 'null' : JSON.stringify(result.error);
    let fields = `,"ok":true,"duration_ms":${duration},"output":${result.output},"error":${error}`;
    fields += `,"stdout":${stdout},"stderr":${stderr}`;
    const size = Buffer.byteLength(fields) + Buffer.byteLength(idJson) + 16;
    if (size > this.max) {
      const message = `the function's response (${size} bytes with its output) exceeds the ${this.max}-byte message limit`;
      fields = `,"ok":true,"duration_ms":${duration},"output":null`;
      fields += `,"error":${JSON.stringify(errorObject(RESPONSE_TOO_LARGE, message))}`;
      fields += `,"stdout":${stdout},"stderr":${stderr}`;
    }
    this.reply(idJson, fields);
  }
}

// An Exec or Ping this process can serve, else null (the agent answers it).
function parseRequest(body) {
  let request;
  try {
    request = JSON.parse(body.toString('utf8'));
  } catch (err) {
    return null;
  }
  if (request === null || typeof request !== 'object' || Array.isArray(request)) return null;
  if (request.type === MSG_PING) return request;
  if (request.type !== MSG_EXEC) return null;
  const deadline = request.deadline_ms;
  if (deadline !== undefined && deadline !== null && typeof deadline !== 'number') return null;
  const trace = request.trace_parent;
  if (trace !== undefined && trace !== null && typeof trace !== 'string') return null;
  return request;
}

(async () => {
  if (options.prestart) specialise();
  else configure(options.handler);
  await load();
  if (options.once) return runOnce(options.once);
  if (options['lane-fd']) {
    const lane = new DirectLane(
      Number(options['lane-fd']),
      Number(options['state-fd']),
      Number(options['max-message-bytes']),
    );
    return lane.serve();
  }
  writeAll(respFd, '{"ready":true}\n');
  serve();
})();
