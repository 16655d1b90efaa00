//! How the CLI prints reports, previews and the catalogue.

use lookout::{Outcome, Preview, Report, catalogue};

use crate::fatal::Fatal;

pub fn report(report: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
        return;
    }
    println!("event {}", escaped(&report.event.to_string()));
    let rows: Vec<[String; 6]> = report
        .results
        .iter()
        .map(|r| {
            let d = &r.delivery;
            let (status, detail) = match &d.outcome {
                Outcome::Delivered { status } => {
                    (status.to_string(), d.target.clone().unwrap_or_default())
                }
                Outcome::Skipped { reason } => (String::new(), reason.clone()),
                Outcome::Failed { reason, status } => (
                    status.map(|s| s.to_string()).unwrap_or_default(),
                    join_target(d.target.as_deref(), reason),
                ),
                Outcome::Disabled { reason, status } => {
                    (status.to_string(), join_target(d.target.as_deref(), reason))
                }
            };
            let time = if d.attempts == 0 && d.duration.is_zero() {
                String::new()
            } else {
                format!("{}ms", d.duration.as_millis())
            };
            [
                r.instance.clone(),
                r.service.to_owned(),
                d.outcome.label().to_owned(),
                status,
                time,
                detail,
            ]
        })
        .collect();
    print_table(
        [
            "SERVICE",
            "KIND",
            "OUTCOME",
            "STATUS",
            "TIME",
            "TARGET / REASON",
        ],
        &rows,
    );
}

fn join_target(target: Option<&str>, reason: &str) -> String {
    match target {
        Some(target) => format!("{target}: {reason}"),
        None => reason.to_owned(),
    }
}

pub fn previews(previews: &[Preview], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(previews).unwrap_or_default()
        );
        return;
    }
    for preview in previews {
        println!("== {} ({})", preview.instance, preview.service);
        if let Some(outcome) = &preview.not_sent {
            let reason = match outcome {
                Outcome::Skipped { reason }
                | Outcome::Failed { reason, .. }
                | Outcome::Disabled { reason, .. } => reason,
                Outcome::Delivered { .. } => "",
            };
            println!("{}: {}\n", outcome.label(), escaped(reason));
        }
        for request in &preview.requests {
            println!("{}", escaped_but(&request.to_string(), &['\n', '\t']));
        }
    }
}

pub fn services(json: bool) {
    let all = catalogue();
    if json {
        let summaries: Vec<_> = all.iter().map(|r| r.summary()).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&summaries).unwrap_or_default()
        );
        return;
    }
    let rows: Vec<[String; 4]> = lookout::docs::by_category(&all)
        .into_iter()
        .flat_map(|(category, members)| {
            members.into_iter().map(move |r| {
                [
                    category.as_str().to_owned(),
                    r.name().to_owned(),
                    r.title().to_owned(),
                    r.events.join(", "),
                ]
            })
        })
        .collect();
    print_table(["KIND", "NAME", "TITLE", "LISTENS TO"], &rows);
}

/// `lookout schema [MODEL] [--asyncapi]`: the payloads' JSON Schema, or the webhook
/// receiver's AsyncAPI document.
pub fn schema(model: Option<&str>, asyncapi: bool) -> Result<(), Fatal> {
    let document = match model {
        _ if asyncapi => lookout_server::api::asyncapi(),
        None => lookout::schemas::payload_schema(),
        Some(name) => lookout::schemas::model_schema(name).ok_or_else(|| {
            let known = lookout::schemas::MODELS.join(", ");
            Fatal(format!("unknown model `{name}` (one of {known})"))
        })?,
    };
    print_json(&document);
    Ok(())
}

pub fn docs(service: Option<&str>, html: bool) -> Result<(), Fatal> {
    match service {
        None if html => print!("{}", lookout::docs::catalogue_html()),
        None => {
            for reg in catalogue() {
                println!("{}", lookout::docs::service_markdown(reg));
            }
        }
        Some("templates") if html => {
            print!(
                "{}",
                lookout::docs::markdown_to_html(&lookout::docs::templates_markdown())
            );
        }
        Some("templates") => print!("{}", lookout::docs::templates_markdown()),
        Some(name) => {
            let reg = lookout::service::find(name).ok_or_else(|| {
                Fatal(format!("unknown service `{name}` (see `lookout services`)"))
            })?;
            let markdown = lookout::docs::service_markdown(reg);
            if html {
                print!("{}", lookout::docs::markdown_to_html(&markdown));
            } else {
                print!("{markdown}");
            }
        }
    }
    Ok(())
}

/// `text` with every control character (ESC, BEL, CR, LF…) and bidirectional override
/// written as an escape (`\x1b`, `\u{202e}`): text that came from a target or a payload
/// can neither drive the terminal nor forge lines of a table.
fn escaped(text: &str) -> String {
    escaped_but(text, &[])
}

/// [`escaped`], keeping the characters in `kept` (line breaks of a multi-line preview).
pub(crate) fn escaped_but(text: &str, kept: &[char]) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if kept.contains(&c) || !(c.is_control() || bidi) {
            out.push(c);
        } else if u32::from(c) <= 0xff {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        }
    }
    out
}

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let rows: Vec<[String; N]> = rows
        .iter()
        .map(|row| row.each_ref().map(|cell| escaped(cell)))
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(i, (c, w))| {
                if i + 1 == N {
                    (*c).to_owned()
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// A stored time (Unix milliseconds) as UTC, to the second.
fn time(ms: lookout_server::store::Millis) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_seconds(at).to_string()
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub fn products(products: &[lookout_server::store::Product], json: bool) {
    if json {
        let shown: Vec<_> = products.iter().map(|p| p.to_redacted_json()).collect();
        print_json(&shown);
        return;
    }
    let rows: Vec<[String; 3]> = products
        .iter()
        .map(|p| {
            let services: Vec<String> = p
                .instances
                .iter()
                .map(|i| {
                    if i.name == i.service {
                        i.name.clone()
                    } else {
                        format!("{} ({})", i.name, i.service)
                    }
                })
                .collect();
            [
                p.id.clone(),
                services.join(", "),
                if p.disabled.is_empty() {
                    String::new()
                } else {
                    format!("{} disabled target(s)", p.disabled.len())
                },
            ]
        })
        .collect();
    print_table(["PRODUCT", "SERVICES", "NOTES"], &rows);
}

/// One product; each service's table as written (options, `events`, lanes, `fallback`,
/// shaping), its secrets redacted.
pub fn product(product: &lookout_server::store::Product, json: bool) {
    if json {
        print_json(&product.to_redacted_json());
        return;
    }
    println!("product {}", product.id);
    let rows: Vec<[String; 3]> = product
        .instances
        .iter()
        .map(|i| {
            let options = i.shown().map_or(
                "(invalid options: fix with `lookout products add`)".into(),
                |o| serde_json::Value::Object(o).to_string(),
            );
            [i.name.clone(), i.service.clone(), options]
        })
        .collect();
    print_table(["SERVICE", "KIND", "OPTIONS"], &rows);
    if !product.disabled.is_empty() {
        println!("\ndisabled targets (answered 410 Gone; re-add the service to enable):");
        for target in &product.disabled {
            println!(
                "  {} {} since {}: {}",
                target.instance,
                escaped(&target.target),
                time(target.at),
                escaped(&target.reason)
            );
        }
    }
}

pub fn deliveries(rows: &[lookout_server::store::DeliveryRow], json: bool) {
    if json {
        print_json(&rows);
        return;
    }
    let table: Vec<[String; 9]> = rows
        .iter()
        .map(|d| {
            [
                d.id.clone(),
                d.product.clone(),
                d.instance.clone(),
                match &d.replaced_by {
                    Some(by) => format!("{} → {by}", d.status),
                    None => d.status.to_string(),
                },
                d.attempts.to_string(),
                time(d.updated_at),
                d.next_at
                    .filter(|_| d.status.is_queued())
                    .map(time)
                    .unwrap_or_default(),
                d.fallback_note().unwrap_or_default(),
                d.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print_table(
        [
            "DELIVERY",
            "PRODUCT",
            "SERVICE",
            "STATUS",
            "ATTEMPTS",
            "UPDATED",
            "NEXT",
            "FALLBACK",
            "LAST ERROR",
        ],
        &table,
    );
}

pub fn delivery(
    (row, shaped): (
        &lookout_server::store::DeliveryRow,
        &[lookout_server::store::DeliveryRow],
    ),
    attempts: &[lookout_server::store::AttemptRecord],
    waiting: Option<&lookout_server::lanes::Waiting>,
    now: lookout_server::store::Millis,
    json: bool,
) {
    if json {
        let mut shown =
            serde_json::json!({ "delivery": row, "attempts": attempts, "waiting": waiting });
        if !shaped.is_empty() {
            shown["replaces"] = serde_json::json!(shaped);
        }
        print_json(&shown);
        return;
    }
    println!("delivery {} (the webhook-id of every attempt)", row.id);
    println!("  event    {}", row.event_id);
    println!("  product  {}", row.product);
    println!("  service  {} ({})", row.instance, row.service);
    println!("  status   {}", row.status);
    println!("  created  {}", time(row.created_at));
    if let Some(next) = row.next_at.filter(|_| row.status.is_queued()) {
        println!("  next     {}", time(next));
    }
    if let Some(waiting) = waiting {
        println!("  waiting  {}", waiting.describe(now));
    }
    if row.ordered && row.status == lookout_server::store::Status::Dead {
        println!("  order    dead: the next delivery with the same order value went on");
    }
    if let Some(note) = row.fallback_note() {
        println!("  fallback {note}");
    }
    shaping(row, shaped);
    println!();
    let rows: Vec<[String; 6]> = attempts
        .iter()
        .map(|a| {
            [
                a.number.to_string(),
                time(a.at),
                a.outcome.to_string(),
                a.status.map(|s| s.to_string()).unwrap_or_default(),
                format!("{}ms", a.duration_ms),
                join_target(a.target.as_deref(), a.error.as_deref().unwrap_or_default()),
            ]
        })
        .collect();
    print_table(
        ["#", "AT", "OUTCOME", "STATUS", "TIME", "TARGET / ERROR"],
        &rows,
    );
}

/// What coalescing or a digest made of a delivery: what replaced it, or what it carries.
fn shaping(
    row: &lookout_server::store::DeliveryRow,
    shaped: &[lookout_server::store::DeliveryRow],
) {
    use lookout_server::store::Status;
    match (&row.replaced_by, row.status) {
        (Some(by), Status::Superseded) => {
            println!("  replaced {by}, the delivery of a newer event of the same item")
        }
        (Some(by), _) => println!("  digest   {by}, which sends this event with others"),
        (None, _) => {}
    }
    if let Some(count) = row.digest_events {
        println!("  digest   of {count} event(s):");
        for gathered in shaped {
            println!(
                "           {} (delivery {})",
                gathered.event_id, gathered.id
            );
        }
    } else if !shaped.is_empty() {
        println!(
            "  replaces {} older delivery(ies) of the same item:",
            shaped.len()
        );
        for older in shaped {
            println!("           {} (event {})", older.id, older.event_id);
        }
    }
}

pub fn stats(stats: &lookout_server::store::Stats, json: bool) {
    if json {
        print_json(stats);
        return;
    }
    println!("events      {}", stats.events);
    println!("attempts    {}", stats.attempts);
    println!("queue depth {}", stats.queue_depth);
    if let Some(due) = stats.next_due {
        println!("next due    {}", time(due));
    }
    println!();
    let rows: Vec<[String; 2]> = stats
        .by_status
        .iter()
        .map(|(status, n)| [status.to_string(), n.to_string()])
        .collect();
    print_table(["STATUS", "DELIVERIES"], &rows);
    if !stats.by_service.is_empty() {
        println!();
        let rows: Vec<[String; 3]> = stats
            .by_service
            .iter()
            .map(|(service, status, n)| [service.clone(), status.to_string(), n.to_string()])
            .collect();
        print_table(["SERVICE", "STATUS", "DELIVERIES"], &rows);
    }
}

/// A token just created: the only time its secret is printed.
pub fn new_token(token: &lookout_server::tokens::Token, secret: &str, json: bool) {
    if json {
        let mut shown = serde_json::json!(token);
        shown["token"] = serde_json::Value::from(secret);
        print_json(&shown);
        return;
    }
    println!("{secret}");
    eprintln!(
        "token {} ({}) created: keep it now, it is not shown again",
        token.id,
        token.scope.as_str()
    );
}

pub fn tokens(tokens: &[lookout_server::tokens::Token], json: bool) {
    if json {
        print_json(&tokens);
        return;
    }
    let rows: Vec<[String; 5]> = tokens
        .iter()
        .map(|t| {
            [
                t.id.clone(),
                t.scope.as_str().to_owned(),
                t.products.join(", "),
                time(t.created_at),
                t.expires_at.map(time).unwrap_or_else(|| "never".into()),
            ]
        })
        .collect();
    print_table(["TOKEN", "SCOPE", "PRODUCTS", "CREATED", "EXPIRES"], &rows);
}

/// Console sessions: ids, what they may see, never their secret.
pub fn sessions(sessions: &[lookout_server::store::ConsoleSession], json: bool) {
    if json {
        print_json(&sessions);
        return;
    }
    let rows: Vec<[String; 5]> = sessions
        .iter()
        .map(|s| {
            [
                s.id.clone(),
                s.product.clone().unwrap_or_else(|| "(admin)".into()),
                s.link.clone().unwrap_or_else(|| "(signed in)".into()),
                time(s.created_at),
                time(s.expires_at),
            ]
        })
        .collect();
    print_table(["SESSION", "PRODUCT", "LINK", "CREATED", "EXPIRES"], &rows);
}

/// Portal links: ids, products, expiry, never their signature.
pub fn links(links: &[lookout_server::store::PortalLink], json: bool) {
    if json {
        print_json(&links);
        return;
    }
    let rows: Vec<[String; 4]> = links
        .iter()
        .map(|l| {
            [
                l.id.clone(),
                l.product.clone().unwrap_or_else(|| "(admin)".into()),
                time(l.created_at),
                time(l.expires_at),
            ]
        })
        .collect();
    print_table(["LINK", "PRODUCT", "CREATED", "EXPIRES"], &rows);
}

/// Whether log lines on stderr may be coloured: only on a terminal, and not when
/// `NO_COLOR` is set (no-color.org). A file or a journal would keep the escapes as noise.
pub fn stderr_takes_colours() -> bool {
    use std::io::IsTerminal as _;
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|value| !value.is_empty());
    !no_color && std::io::stderr().is_terminal()
}
