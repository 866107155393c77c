-- Nova's Lua runtime: a Lambda Runtime API client that runs `function M.handler(event, context)`
-- from the function's module (a file returning a table, as Lua modules do; a global function of
-- that name works too). Lua's standard library has neither HTTP nor JSON, so this uses Debian's
-- lua-socket and lua-cjson (`make runtimes`). The agent serves the API on the instance's
-- loopback (agent/provided.py); this file ships in the agent package.
local http = require("socket.http")
local ltn12 = require("ltn12")
local cjson = require("cjson")

io.stdout:setvbuf("line")
local base = "http://" .. os.getenv("AWS_LAMBDA_RUNTIME_API") .. "/2018-06-01/runtime"
http.TIMEOUT = nil -- /next blocks until an event arrives

local function request(method, path, body)
  local chunks = {}
  local ok, status, headers = http.request({
    url = base .. path,
    method = method,
    headers = body and { ["Content-Type"] = "application/json", ["Content-Length"] = #body } or {},
    source = body and ltn12.source.string(body) or nil,
    sink = ltn12.sink.table(chunks),
  })
  if not ok then
    io.stderr:write("nova: the Runtime API is unreachable: ", tostring(status), "\n")
    os.exit(1)
  end
  return status, headers, table.concat(chunks)
end

local function failure(message, kind, trace)
  local stack = {}
  for line in tostring(trace or ""):gmatch("[^\n]+") do stack[#stack + 1] = line end
  return cjson.encode({ errorMessage = tostring(message), errorType = kind, stackTrace = stack })
end

local handler_name = os.getenv("_HANDLER")
local module, name = handler_name:match("^(.*)%.([^.]+)$")
package.path = os.getenv("LAMBDA_TASK_ROOT") .. "/?.lua;" .. package.path
local loaded, exported = xpcall(require, debug.traceback, module)
if not loaded then
  request("POST", "/init/error", failure(exported, "Runtime.ImportModuleError"))
  os.exit(1)
end
local handler = type(exported) == "table" and exported[name] or _G[name]
if type(handler) ~= "function" then
  local message = module .. ".lua has no function " .. name
  request("POST", "/init/error", failure(message, "Runtime.HandlerNotFound"))
  os.exit(1)
end

while true do
  local status, headers, body = request("GET", "/invocation/next")
  if status ~= 200 then os.exit(1) end
  local id = headers["lambda-runtime-aws-request-id"]
  local deadline = tonumber(headers["lambda-runtime-deadline-ms"]) or 0
  local context = {
    aws_request_id = id,
    function_name = os.getenv("AWS_LAMBDA_FUNCTION_NAME"),
    invoked_function_arn = headers["lambda-runtime-invoked-function-arn"],
    get_remaining_time_in_millis = function()
      return math.max(deadline - math.floor(os.time() * 1000), 0)
    end,
  }
  local answered, result = xpcall(function()
    return cjson.encode(handler(cjson.decode(body), context))
  end, function(message)
    return { message = message, trace = debug.traceback() }
  end)
  if answered then
    request("POST", "/invocation/" .. id .. "/response", result)
  else
    local message = tostring(result.message):gsub("^[^:]+:%d+: ", "")
    request("POST", "/invocation/" .. id .. "/error", failure(message, "Lua.Error", result.trace))
  end
end
