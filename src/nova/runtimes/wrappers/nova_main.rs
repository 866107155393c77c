// Nova's main for Rust functions: the handler's module (the function's own file, NOVA_PATH)
// exports `pub fn NOVA_FUNCTION(event: &str) -> Result<String, String>`, taking the event's
// JSON text and returning the result's JSON text (or an error message). This main speaks the
// Lambda Runtime API over plain HTTP/1.1 with the standard library alone, so a function needs
// no crates (and no network at build time).
#[path = "NOVA_PATH"]
mod nova_handler;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

fn request(address: &str, method: &str, path: &str, body: &str) -> (Vec<(String, String)>, String) {
    let mut stream = TcpStream::connect(address).expect("nova: cannot reach the Runtime API");
    write!(
        stream,
        "{} {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        method, path, address, body.len(), body
    )
    .expect("nova: cannot write to the Runtime API");
    let mut reader = BufReader::new(stream);
    let mut headers = Vec::new();
    let mut line = String::new();
    reader.read_line(&mut line).expect("nova: no status line");
    let mut length: Option<usize> = None;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("nova: bad header");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        if let Some((name, value)) = trimmed.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_string());
            if name == "content-length" {
                length = value.parse().ok();
            }
            headers.push((name, value));
        }
    }
    let mut payload = Vec::new();
    match length {
        Some(size) => {
            payload.resize(size, 0);
            reader.read_exact(&mut payload).expect("nova: short body");
        }
        None => {
            reader.read_to_end(&mut payload).expect("nova: unreadable body");
        }
    }
    (headers, String::from_utf8_lossy(&payload).into_owned())
}

fn quoted(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn main() {
    let address = std::env::var("AWS_LAMBDA_RUNTIME_API").expect("AWS_LAMBDA_RUNTIME_API unset");
    loop {
        let (headers, event) = request(&address, "GET", "/2018-06-01/runtime/invocation/next", "");
        let id = headers
            .iter()
            .find(|(name, _)| name == "lambda-runtime-aws-request-id")
            .map(|(_, value)| value.clone())
            .unwrap_or_default();
        let (path, body) = match nova_handler::NOVA_FUNCTION(&event) {
            Ok(output) => (format!("/2018-06-01/runtime/invocation/{}/response", id), output),
            Err(message) => (
                format!("/2018-06-01/runtime/invocation/{}/error", id),
                format!("{{\"errorType\":\"Function.Error\",\"errorMessage\":{}}}", quoted(&message)),
            ),
        };
        request(&address, "POST", &path, &body);
    }
}
