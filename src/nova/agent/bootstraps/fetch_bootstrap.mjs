// Nova's Deno and Bun runtime: a Lambda Runtime API client using only what both runtimes have
// built in (fetch, dynamic import), that runs `export async function handler(event, context)`
// from the function's module (.ts, .js or .mjs). The agent serves the API on the instance's
// loopback (agent/provided.py); this file ships in the agent package.
const env = (name) => (globalThis.Deno ? Deno.env.get(name) : process.env[name]);
const base = `http://${env("AWS_LAMBDA_RUNTIME_API")}/2018-06-01/runtime`;
const exit = (status) => (globalThis.Deno ? Deno.exit(status) : process.exit(status));

const post = (path, document) =>
  fetch(base + path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(document === undefined ? null : document),
  }).then((response) => response.arrayBuffer());

const failure = (error, type) => ({
  errorType: type || (error && error.name) || "Error",
  errorMessage: error && error.message !== undefined ? String(error.message) : String(error),
  stackTrace: error && error.stack ? String(error.stack).split("\n") : [],
});

async function exists(path) {
  try {
    if (globalThis.Deno) {
      await Deno.stat(path);
      return true;
    }
    return await Bun.file(path).exists();
  } catch {
    return false;
  }
}

async function load() {
  const handler = env("_HANDLER");
  const dot = handler.lastIndexOf(".");
  const [module, name] = [handler.slice(0, dot), handler.slice(dot + 1)];
  const root = env("LAMBDA_TASK_ROOT");
  for (const extension of [".ts", ".js", ".mjs"]) {
    const path = `${root}/${module}${extension}`;
    if (!(await exists(path))) continue;
    let loaded;
    try {
      loaded = await import(`file://${path}`);
    } catch (error) {
      await post("/init/error", failure(error, "Runtime.ImportModuleError"));
      exit(1);
    }
    if (typeof loaded[name] !== "function") {
      const error = new Error(`${module}${extension} does not export a function ${name}`);
      await post("/init/error", failure(error, "Runtime.HandlerNotFound"));
      exit(1);
    }
    return loaded[name];
  }
  const error = new Error(`no ${module}.ts, ${module}.js or ${module}.mjs in the code`);
  await post("/init/error", failure(error, "Runtime.ImportModuleError"));
  exit(1);
}

const handler = await load();
for (;;) {
  const next = await fetch(`${base}/invocation/next`);
  if (!next.ok) exit(1);
  const id = next.headers.get("Lambda-Runtime-Aws-Request-Id");
  const deadline = Number(next.headers.get("Lambda-Runtime-Deadline-Ms"));
  const context = {
    awsRequestId: id,
    invokedFunctionArn: next.headers.get("Lambda-Runtime-Invoked-Function-Arn"),
    functionName: env("AWS_LAMBDA_FUNCTION_NAME"),
    functionVersion: env("AWS_LAMBDA_FUNCTION_VERSION"),
    memoryLimitInMB: env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE"),
    getRemainingTimeInMillis: () => Math.max(deadline - Date.now(), 0),
  };
  try {
    const event = JSON.parse(await next.text());
    await post(`/invocation/${id}/response`, await handler(event, context));
  } catch (error) {
    await post(`/invocation/${id}/error`, failure(error));
  }
}
