<?php
// Nova's PHP runtime: a Lambda Runtime API client (no extensions needed) that runs
// `function handler($event, $context)` from the function's `<module>.php`. The agent serves the
// API on the instance's loopback (agent/provided.py); this file ships in the agent package.

$base = 'http://' . getenv('AWS_LAMBDA_RUNTIME_API') . '/2018-06-01/runtime';

function runtime_api(string $method, string $url, ?string $body = null): array
{
    $options = ['http' => [
        'method' => $method,
        'ignore_errors' => true,
        'timeout' => 86400, // /next blocks until an event arrives
        'header' => "Content-Type: application/json\r\n",
    ]];
    if ($body !== null) {
        $options['http']['content'] = $body;
    }
    $answer = @file_get_contents($url, false, stream_context_create($options));
    if ($answer === false) {
        exit(1); // the Runtime API is gone: the instance is stopping
    }
    $headers = [];
    foreach ($http_response_header as $line) {
        $parts = explode(':', $line, 2);
        if (count($parts) === 2) {
            $headers[strtolower(trim($parts[0]))] = trim($parts[1]);
        }
    }
    return [$answer, $headers];
}

function failure(Throwable $error, ?string $type = null): string
{
    return json_encode([
        'errorMessage' => $error->getMessage(),
        'errorType' => $type ?? get_class($error),
        'stackTrace' => explode("\n", $error->getTraceAsString()),
    ]);
}

$handler = getenv('_HANDLER');
$dot = strrpos($handler, '.');
$file = substr($handler, 0, $dot);
$function = substr($handler, $dot + 1);
try {
    require getenv('LAMBDA_TASK_ROOT') . '/' . $file . '.php';
    if (!function_exists($function)) {
        throw new Error("Handler '$function' missing on '$file.php'");
    }
} catch (Throwable $error) {
    runtime_api('POST', "$base/init/error", failure($error, 'Runtime.ImportModuleError'));
    exit(1);
}

while (true) {
    [$body, $headers] = runtime_api('GET', "$base/invocation/next");
    $id = $headers['lambda-runtime-aws-request-id'] ?? '';
    $deadline = (int) ($headers['lambda-runtime-deadline-ms'] ?? 0);
    $context = [
        'aws_request_id' => $id,
        'function_name' => getenv('AWS_LAMBDA_FUNCTION_NAME'),
        'function_version' => getenv('AWS_LAMBDA_FUNCTION_VERSION'),
        'memory_limit_in_mb' => (int) getenv('AWS_LAMBDA_FUNCTION_MEMORY_SIZE'),
        'invoked_function_arn' => $headers['lambda-runtime-invoked-function-arn'] ?? '',
        'log_group_name' => getenv('AWS_LAMBDA_LOG_GROUP_NAME'),
        'log_stream_name' => getenv('AWS_LAMBDA_LOG_STREAM_NAME'),
        'deadline_ms' => $deadline,
    ];
    try {
        $result = $function(json_decode($body, true), $context);
        runtime_api('POST', "$base/invocation/$id/response", json_encode($result));
    } catch (Throwable $error) {
        runtime_api('POST', "$base/invocation/$id/error", failure($error));
    }
}
