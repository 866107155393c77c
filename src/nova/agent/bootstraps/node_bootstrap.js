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
  if (!options.handler || !options['resp-fd']) {
    process.stderr.write('usage: node_bootstrap.js --handler MOD.FN --resp-fd N [--once FILE]\n');
    process.exit(2);
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const respFd = Number(options['resp-fd']);
const env = process.env;
const codeDir = env.NOVA_CODE_DIR || process.cwd();
const functionName = env.NOVA_FUNCTION_NAME || '';
const functionVersion = env.NOVA_FUNCTION_VERSION || '';
const memoryLimitInMB = Number(env.NOVA_MEMORY_LIMIT_MB || 0);
const defaultTimeoutMs = Number(env.NOVA_TIMEOUT_S || 30) * 1000;
const dot = options.handler.lastIndexOf('.');
const modulePath = options.handler.slice(0, dot);
const functionKey = options.handler.slice(dot + 1);

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

function makeContext(request) {
  const deadline = Number(request.deadline_ms) || Date.now() + defaultTimeoutMs;
  const id = request.id === undefined || request.id === null ? '' : String(request.id);
  return {
    requestId: id,
    awsRequestId: id,
    functionName,
    functionVersion,
    memoryLimitInMB,
    invokedFunctionArn: `arn:nova:function:${functionName}`,
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  };
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

(async () => {
  await load();
  if (options.once) return runOnce(options.once);
  writeAll(respFd, '{"ready":true}\n');
  serve();
})();
