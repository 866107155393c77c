# Nova's Ruby runtime: a Lambda Runtime API client (stdlib only) that runs `def handler(event:,
# context:)` from the function's code, as AWS's Ruby runtime does. The agent serves the API on
# the instance's loopback (agent/provided.py); this file ships in the agent package.
require 'json'
require 'net/http'

$stdout.sync = true
$stderr.sync = true
# Pre-started (nova/agent/prestart.py): Ruby and the libraries are up before any function is
# known; say so on the fd named, then wait for the function's environment and directory.
if (ready_fd = ENV['NOVA_PRESTART_FD'])
  IO.new(ready_fd.to_i, 'w').tap { |ready| ready.write("{\"prestarted\":true}\n") }.close
  order = JSON.parse($stdin.gets || exit(0))
  ENV.replace(order.fetch('env'))
  Dir.chdir(order.fetch('cwd'))
end
$stdin.reopen(File::NULL)
host, port = ENV.fetch('AWS_LAMBDA_RUNTIME_API').split(':')
BASE = '/2018-06-01/runtime'
HTTP = Net::HTTP.new(host, port.to_i)
HTTP.read_timeout = nil # /next blocks until an event arrives
HTTP.start

def post(path, document)
  HTTP.post(BASE + path, JSON.generate(document), 'Content-Type' => 'application/json')
end

def failure(error, type = error.class.name)
  { errorMessage: error.message, errorType: type, stackTrace: error.backtrace || [] }
end

# What a handler's `context:` offers (the AWS Ruby runtime's names).
class NovaContext
  attr_reader :aws_request_id, :function_name, :function_version, :memory_limit_in_mb,
              :invoked_function_arn, :log_group_name, :log_stream_name, :client_context

  def initialize(headers)
    @aws_request_id = headers['Lambda-Runtime-Aws-Request-Id']
    @deadline_ms = headers['Lambda-Runtime-Deadline-Ms'].to_i
    @invoked_function_arn = headers['Lambda-Runtime-Invoked-Function-Arn']
    @client_context = headers['Lambda-Runtime-Client-Context']
    @function_name = ENV['AWS_LAMBDA_FUNCTION_NAME']
    @function_version = ENV['AWS_LAMBDA_FUNCTION_VERSION']
    @memory_limit_in_mb = ENV['AWS_LAMBDA_FUNCTION_MEMORY_SIZE']
    @log_group_name = ENV['AWS_LAMBDA_LOG_GROUP_NAME']
    @log_stream_name = ENV['AWS_LAMBDA_LOG_STREAM_NAME']
  end

  def get_remaining_time_in_millis
    [@deadline_ms - (Time.now.to_f * 1000).to_i, 0].max
  end
end

handler = ENV.fetch('_HANDLER')
file, name = handler[0...handler.rindex('.')], handler[(handler.rindex('.') + 1)..]
begin
  require File.join(ENV.fetch('LAMBDA_TASK_ROOT'), file)
  raise NameError, "Handler '#{name}' missing on '#{file}.rb'" unless respond_to?(name, true)
rescue NameError => e
  post('/init/error', failure(e, 'Runtime.HandlerNotFound'))
  exit 1
rescue Exception => e # rubocop:disable Lint/RescueException (any load failure is the user's)
  post('/init/error', failure(e, 'Runtime.ImportModuleError'))
  exit 1
end

loop do
  response = HTTP.get("#{BASE}/invocation/next")
  exit 1 unless response.is_a?(Net::HTTPSuccess)
  id = response['Lambda-Runtime-Aws-Request-Id']
  begin
    event = JSON.parse(response.body)
    result = send(name, event: event, context: NovaContext.new(response))
    post("/invocation/#{id}/response", result)
  rescue Exception => e # rubocop:disable Lint/RescueException
    post("/invocation/#{id}/error", failure(e))
  end
end
