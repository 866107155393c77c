// Nova's main for Java functions: calls `public static String NOVA_METHOD(String event)` of the
// handler's class (NOVA_CLASS), with the event's JSON text, through the Lambda Runtime API that
// Nova's agent serves; the returned String is the result's JSON text. The JDK alone, no jars.
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;

public final class NovaMain {
    public static void main(String[] args) throws Exception {
        String api = "http://" + System.getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime";
        HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1).build();
        while (true) {
            HttpResponse<String> next = client.send(
                HttpRequest.newBuilder(URI.create(api + "/invocation/next")).GET().build(),
                HttpResponse.BodyHandlers.ofString());
            String id = next.headers().firstValue("Lambda-Runtime-Aws-Request-Id").orElse("");
            String path;
            String body;
            try {
                body = NOVA_CLASS.NOVA_METHOD(next.body());
                path = "/invocation/" + id + "/response";
            } catch (Exception error) {
                StringWriter trace = new StringWriter();
                error.printStackTrace(new PrintWriter(trace));
                body = "{\"errorType\":" + quoted(error.getClass().getName())
                    + ",\"errorMessage\":" + quoted(String.valueOf(error.getMessage()))
                    + ",\"stackTrace\":" + quoted(trace.toString()) + "}";
                path = "/invocation/" + id + "/error";
            }
            client.send(
                HttpRequest.newBuilder(URI.create(api + path))
                    .POST(HttpRequest.BodyPublishers.ofString(body == null ? "null" : body))
                    .build(),
                HttpResponse.BodyHandlers.discarding());
        }
    }

    private static String quoted(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            if (c == '"' || c == '\\') {
                out.append('\\').append(c);
            } else if (c < 0x20) {
                out.append(String.format("\\u%04x", (int) c));
            } else {
                out.append(c);
            }
        }
        return out.append('"').toString();
    }
}
