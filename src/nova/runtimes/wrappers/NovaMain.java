// Nova's main for Java functions: calls `public static String NOVA_METHOD(String event)` of the
// handler's class (NOVA_CLASS), with the event's JSON text, through the Lambda Runtime API that
// Nova's agent serves; the returned String is the result's JSON text. The JDK alone, no jars.
import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.net.HttpURLConnection;
import java.net.URL;
import java.nio.charset.StandardCharsets;

// HttpURLConnection rather than java.net.http.HttpClient: the latter initialises TLS (and so
// reads /etc/java-*/security) even for plain HTTP, and a sandbox need not hold /etc.
public final class NovaMain {
    public static void main(String[] args) throws Exception {
        String api = "http://" + System.getenv("AWS_LAMBDA_RUNTIME_API") + "/2018-06-01/runtime";
        while (true) {
            HttpURLConnection next = (HttpURLConnection) new URL(api + "/invocation/next").openConnection();
            next.setReadTimeout(0); // blocks until an event arrives
            String event = read(next.getInputStream());
            String id = next.getHeaderField("Lambda-Runtime-Aws-Request-Id");
            String path;
            String body;
            try {
                body = NOVA_CLASS.NOVA_METHOD(event);
                path = "/invocation/" + id + "/response";
            } catch (Exception error) {
                StringWriter trace = new StringWriter();
                error.printStackTrace(new PrintWriter(trace));
                body = "{\"errorType\":" + quoted(error.getClass().getName())
                    + ",\"errorMessage\":" + quoted(String.valueOf(error.getMessage()))
                    + ",\"stackTrace\":" + quoted(trace.toString()) + "}";
                path = "/invocation/" + id + "/error";
            }
            post(api + path, body == null ? "null" : body);
        }
    }

    private static void post(String url, String body) throws Exception {
        HttpURLConnection connection = (HttpURLConnection) new URL(url).openConnection();
        connection.setRequestMethod("POST");
        connection.setDoOutput(true);
        connection.setRequestProperty("Content-Type", "application/json");
        try (OutputStream out = connection.getOutputStream()) {
            out.write(body.getBytes(StandardCharsets.UTF_8));
        }
        read(connection.getResponseCode() < 400 ? connection.getInputStream() : connection.getErrorStream());
    }

    private static String read(InputStream stream) throws Exception {
        if (stream == null) {
            return "";
        }
        try (InputStream in = stream) {
            ByteArrayOutputStream buffer = new ByteArrayOutputStream();
            in.transferTo(buffer);
            return buffer.toString(StandardCharsets.UTF_8);
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
