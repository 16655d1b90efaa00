//! How the CLI prints reports, previews and the catalogue.

use lookout::{Outcome, Preview, Report, catalogue};

use crate::Fatal;

pub fn report(report: &Report, json: bool) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
        return;
    }
    println!("event {}", report.event);
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
            println!("{}: {reason}\n", outcome.label());
        }
        for request in &preview.requests {
            println!("{request}");
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
    let rows: Vec<[String; 3]> = all
        .iter()
        .map(|r| {
            [
                r.name().to_owned(),
                r.title().to_owned(),
                r.service.events().join(", "),
            ]
        })
        .collect();
    print_table(["NAME", "TITLE", "LISTENS TO"], &rows);
}

pub fn docs(service: Option<&str>, html: bool) -> Result<(), Fatal> {
    match service {
        None if html => print!("{}", lookout::docs::catalogue_html()),
        None => {
            for reg in catalogue() {
                println!("{}", lookout::docs::service_markdown(reg));
            }
        }
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

fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
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
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
