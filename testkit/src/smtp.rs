//! A local SMTP capture server.

use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// A local SMTP server for tests: listens on 127.0.0.1 (port 0), speaks just enough
/// SMTP for a client to submit mail (EHLO/HELO, AUTH PLAIN and LOGIN, MAIL FROM, RCPT TO,
/// DATA, RSET, NOOP, QUIT, no TLS), and records every message. Dropping it stops it.
pub struct SmtpCaptureServer {
    addr: SocketAddr,
    shared: Arc<SmtpShared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct SmtpShared {
    mails: Mutex<Vec<CapturedMail>>,
    arrived: Condvar,
    reject_auth: std::sync::atomic::AtomicBool,
    /// How many more `MAIL` commands get `451` (try again later).
    busy: std::sync::atomic::AtomicU32,
    stop: std::sync::atomic::AtomicBool,
}

/// The credentials a client logged in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpLogin {
    /// `PLAIN` or `LOGIN`.
    pub mechanism: String,
    pub username: String,
    pub password: String,
}

/// One message as it arrived.
#[derive(Debug, Clone)]
pub struct CapturedMail {
    /// The name the client gave in EHLO or HELO.
    pub helo: String,
    pub login: Option<SmtpLogin>,
    /// The envelope: `MAIL FROM` and `RCPT TO` addresses, without the angle brackets.
    pub mail_from: String,
    pub rcpt_to: Vec<String>,
    /// The message after DATA, dot-unstuffed, without the final `.` line.
    pub data: Vec<u8>,
}

/// One part of a MIME message, its body decoded.
#[derive(Debug, Clone)]
pub struct MimePart {
    /// The `Content-Type` header, as sent.
    pub content_type: String,
    pub body: String,
}

impl CapturedMail {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }

    /// A top-level header's value, unfolded (not RFC 2047-decoded).
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(head_of(&self.text()), name)
    }

    /// The leaf parts of the message (one part for a message that is not multipart),
    /// each body decoded from quoted-printable or base64.
    pub fn parts(&self) -> Vec<MimePart> {
        mime_parts(&self.text())
    }
}

/// The header block of a MIME entity (before the first blank line).
fn head_of(entity: &str) -> &str {
    entity
        .split_once("\r\n\r\n")
        .or_else(|| entity.split_once("\n\n"))
        .map_or(entity, |(head, _)| head)
}

fn body_of(entity: &str) -> &str {
    entity
        .split_once("\r\n\r\n")
        .or_else(|| entity.split_once("\n\n"))
        .map_or("", |(_, body)| body)
}

fn header_in(head: &str, name: &str) -> Option<String> {
    let mut found: Option<String> = None;
    for line in head.lines() {
        if line.starts_with([' ', '\t']) {
            if let Some(value) = found.as_mut() {
                value.push_str(line.trim_end());
            }
            continue;
        }
        if found.is_some() {
            break;
        }
        if let Some((n, value)) = line.split_once(':')
            && n.trim().eq_ignore_ascii_case(name)
        {
            found = Some(value.trim().to_owned());
        }
    }
    found
}

fn mime_parts(entity: &str) -> Vec<MimePart> {
    let head = head_of(entity);
    let content_type = header_in(head, "content-type").unwrap_or_else(|| "text/plain".into());
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"').to_owned());
    match boundary {
        Some(boundary) if content_type.to_ascii_lowercase().starts_with("multipart/") => {
            let delimiter = format!("--{boundary}");
            body_of(entity)
                .split(delimiter.as_str())
                .skip(1) // the preamble
                .take_while(|part| !part.starts_with("--")) // the closing delimiter
                .flat_map(|part| mime_parts(part.trim_start_matches(['\r', '\n'])))
                .collect()
        }
        _ => {
            let encoding = header_in(head, "content-transfer-encoding")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let raw = body_of(entity);
            let body = match encoding.as_str() {
                "base64" => {
                    use base64::Engine as _;
                    let compact: String = raw.split_whitespace().collect();
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .unwrap_or_default();
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                "quoted-printable" => decode_quoted_printable(raw),
                _ => raw.to_owned(),
            };
            vec![MimePart {
                content_type,
                body: body.trim_end_matches(['\r', '\n']).to_owned(),
            }]
        }
    }
}

fn decode_quoted_printable(text: &str) -> String {
    let joined = text.replace("=\r\n", "").replace("=\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl SmtpCaptureServer {
    pub fn start() -> SmtpCaptureServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(SmtpShared::default());
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if state.stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || {
                    let _ = smtp_session(stream, &state);
                });
            }
        });
        SmtpCaptureServer {
            addr,
            shared,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// From now on, answer every AUTH with 535, echoing the credentials in the reply (as
    /// a careless server might) so tests can check they are redacted.
    pub fn reject_auth(&self) {
        self.shared
            .reject_auth
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Answer the next `n` `MAIL` commands with `451 4.3.2 try again later`, a
    /// transient failure, as a busy or greylisting server does.
    pub fn answer_busy(&self, n: u32) {
        self.shared
            .busy
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Every message received so far.
    pub fn mails(&self) -> Vec<CapturedMail> {
        self.shared.mails.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages have arrived, or `timeout` passes.
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<CapturedMail> {
        let mails = self.shared.mails.lock().unwrap();
        let (mails, _) = self
            .shared
            .arrived
            .wait_timeout_while(mails, timeout, |m| m.len() < n)
            .unwrap();
        mails.clone()
    }
}

impl Drop for SmtpCaptureServer {
    fn drop(&mut self) {
        self.shared
            .stop
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = std::net::TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One client connection, until QUIT or the client goes away.
fn smtp_session(stream: std::net::TcpStream, shared: &SmtpShared) -> std::io::Result<()> {
    use std::io::{BufRead, BufReader, Write};
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    let mut reply = |out: &mut std::net::TcpStream, text: &str| -> std::io::Result<()> {
        out.write_all(text.as_bytes())?;
        out.write_all(b"\r\n")
    };
    let mut read_line = move || -> std::io::Result<Option<String>> {
        let mut line = String::new();
        match reader.read_line(&mut line)? {
            0 => Ok(None),
            _ => Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned())),
        }
    };

    reply(&mut out, "220 127.0.0.1 lookout test SMTP ready")?;
    let mut helo = String::new();
    let mut login = None;
    let mut mail: Option<CapturedMail> = None;
    while let Some(line) = read_line()? {
        let (verb, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => {
                helo = rest.trim().to_owned();
                reply(
                    &mut out,
                    "250-127.0.0.1 hello\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250 SMTPUTF8",
                )?;
            }
            "HELO" => {
                helo = rest.trim().to_owned();
                reply(&mut out, "250 127.0.0.1 hello")?;
            }
            "AUTH" => {
                let Some(got) = smtp_auth(rest, &mut out, &mut reply, &mut read_line)? else {
                    reply(&mut out, "501 5.5.2 cannot decode the credentials")?;
                    continue;
                };
                if shared.reject_auth.load(std::sync::atomic::Ordering::SeqCst) {
                    let text = format!(
                        "535 5.7.8 rejected {}:{} (this test server echoes it)",
                        got.username, got.password
                    );
                    reply(&mut out, &text)?;
                } else {
                    login = Some(got);
                    reply(&mut out, "235 2.7.0 Authentication successful")?;
                }
            }
            "MAIL" if take_one(&shared.busy) => {
                reply(&mut out, "451 4.3.2 try again later")?;
            }
            "MAIL" => {
                mail = Some(CapturedMail {
                    helo: helo.clone(),
                    login: login.clone(),
                    mail_from: angle_address(rest),
                    rcpt_to: Vec::new(),
                    data: Vec::new(),
                });
                reply(&mut out, "250 2.1.0 OK")?;
            }
            "RCPT" => match mail.as_mut() {
                Some(m) => {
                    m.rcpt_to.push(angle_address(rest));
                    reply(&mut out, "250 2.1.5 OK")?;
                }
                None => reply(&mut out, "503 5.5.1 MAIL first")?,
            },
            "DATA" => {
                let Some(mut m) = mail.take().filter(|m| !m.rcpt_to.is_empty()) else {
                    reply(&mut out, "503 5.5.1 RCPT first")?;
                    continue;
                };
                reply(&mut out, "354 end with <CRLF>.<CRLF>")?;
                while let Some(data_line) = read_line()? {
                    if data_line == "." {
                        break;
                    }
                    // Dot-unstuffing: a leading dot was doubled by the client.
                    let unstuffed = data_line.strip_prefix('.').unwrap_or(&data_line);
                    m.data.extend_from_slice(unstuffed.as_bytes());
                    m.data.extend_from_slice(b"\r\n");
                }
                shared.mails.lock().unwrap().push(m);
                shared.arrived.notify_all();
                reply(&mut out, "250 2.0.0 queued")?;
            }
            "RSET" => {
                mail = None;
                reply(&mut out, "250 2.0.0 OK")?;
            }
            "NOOP" => reply(&mut out, "250 2.0.0 OK")?,
            "QUIT" => {
                reply(&mut out, "221 2.0.0 bye")?;
                break;
            }
            _ => reply(&mut out, "502 5.5.2 command not implemented")?,
        }
    }
    Ok(())
}

/// Takes one from `count` if it is not zero.
fn take_one(count: &std::sync::atomic::AtomicU32) -> bool {
    use std::sync::atomic::Ordering::SeqCst;
    count
        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// `FROM:<a@b.c> SIZE=1` → `a@b.c`.
fn angle_address(rest: &str) -> String {
    match (rest.find('<'), rest.find('>')) {
        (Some(start), Some(end)) if start < end => rest[start + 1..end].to_owned(),
        _ => rest
            .split_once(':')
            .map_or(rest, |(_, a)| a)
            .trim()
            .to_owned(),
    }
}

/// AUTH PLAIN (with or without an initial response) and AUTH LOGIN; `None` when the
/// credentials cannot be decoded.
fn smtp_auth(
    rest: &str,
    out: &mut std::net::TcpStream,
    reply: &mut impl FnMut(&mut std::net::TcpStream, &str) -> std::io::Result<()>,
    read_line: &mut impl FnMut() -> std::io::Result<Option<String>>,
) -> std::io::Result<Option<SmtpLogin>> {
    use base64::Engine as _;
    let decode = |text: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
    };
    let (mechanism, initial) = rest.split_once(' ').unwrap_or((rest, ""));
    let mechanism = mechanism.to_ascii_uppercase();
    let mut ask = |prompt: &str| -> std::io::Result<Option<String>> {
        reply(out, &format!("334 {prompt}"))?;
        Ok(read_line()?.and_then(|answer| decode(&answer)))
    };
    let login = match mechanism.as_str() {
        "PLAIN" => {
            let decoded = if initial.is_empty() {
                ask("")?
            } else {
                decode(initial)
            };
            // authzid \0 authcid \0 password
            decoded.and_then(|text| {
                let mut fields = text.split('\0').skip(1);
                Some((fields.next()?.to_owned(), fields.next()?.to_owned()))
            })
        }
        "LOGIN" => {
            let username = if initial.is_empty() {
                ask("VXNlcm5hbWU6")? // "Username:"
            } else {
                decode(initial)
            };
            match username {
                Some(username) => ask("UGFzc3dvcmQ6")?.map(|password| (username, password)),
                None => None,
            }
        }
        _ => None,
    };
    Ok(login.map(|(username, password)| SmtpLogin {
        mechanism,
        username,
        password,
    }))
}
