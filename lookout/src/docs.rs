//! Install docs: each service's Markdown (from its doc comments) rendered to HTML, and
//! the whole catalogue as one page.

use std::fmt::Write as _;

use pulldown_cmark::{Options as Markdown, Parser, html};

use crate::delivery::ratelimit::RateLimit;
use crate::options::{Kind, OptionSpec};
use crate::service::{Category, Registration, catalogue};
use crate::text::template::{Part, VARIABLES};

/// Markdown to HTML (tables and strikethrough on).
pub fn markdown_to_html(markdown: &str) -> String {
    let parser = Parser::new_ext(
        markdown,
        Markdown::ENABLE_TABLES | Markdown::ENABLE_STRIKETHROUGH,
    );
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}

/// A service's full docs in Markdown: its doc comments, then the events it listens to,
/// its options and an example config, all generated from the service itself.
pub fn service_markdown(reg: &Registration) -> String {
    let mut md = format!("# {}\n\n{}\n", reg.title(), reg.description());
    let events: Vec<String> = reg.events.iter().map(|e| format!("`{e}`")).collect();
    let _ = writeln!(
        md,
        "**Service name:** `{}` · **Kind:** {} · **Listens to:** {}\n",
        reg.name(),
        reg.category.as_str(),
        events.join(", ")
    );
    let _ = writeln!(md, "**Rate limit:** {}\n", rate_limit_line(reg.rate_limit));
    let _ = writeln!(md, "## Size limits\n\n{}", reg.limits.docs());
    let _ = writeln!(
        md,
        "## Answers\n\nWhat its answers mean besides their status (`410` disables the \
         target; `429` and most `5xx` are tried again):\n\n{}",
        reg.answers.docs()
    );
    let schema = &reg.schema;
    md.push_str("## Options\n\n| Option | Kind | Required | Default | Description |\n|---|---|---|---|---|\n");
    for spec in schema.options {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} |",
            spec.name,
            kind_label(spec),
            if spec.required { "yes" } else { "no" },
            spec.default.map(|d| format!("`{d}`")).unwrap_or_default(),
            spec.help.replace('|', "\\|"),
        );
    }
    if schema.extra_allowed {
        md.push_str("\nAny other option is passed through to the service as it is.\n");
    }
    let _ = write!(
        md,
        "\n## Example configuration\n\n```toml\n[services.{}]\n{}\n```\n",
        reg.name(),
        reg.example.trim()
    );
    md
}

/// How fast the engine sends to one target of a service, for its docs.
pub fn rate_limit_line(limit: Option<RateLimit>) -> String {
    match limit {
        Some(limit) => format!(
            "{}; requests over that wait their turn (within the deadline).",
            capitalize_first(&limit.describe())
        ),
        None => "none (requests go out at full speed; retries still back off).".to_owned(),
    }
}

fn capitalize_first(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn kind_label(spec: &OptionSpec) -> String {
    let kind = match spec.kind {
        Kind::String => "string".to_owned(),
        Kind::Url => "URL".to_owned(),
        Kind::List => "list".to_owned(),
        Kind::UrlList => "list of URLs".to_owned(),
        Kind::Bool => "bool".to_owned(),
        Kind::Integer => match spec.range {
            Some((min, max)) => format!("integer, {min} to {max}"),
            None => "integer".to_owned(),
        },
        Kind::Choice(words) => words
            .iter()
            .map(|w| format!("`{w}`"))
            .collect::<Vec<_>>()
            .join(" / "),
    };
    if spec.is_secret() {
        format!("{kind}, **secret**")
    } else {
        kind
    }
}

/// Every service's docs as one HTML page with a table of contents.
pub fn catalogue_html() -> String {
    let services = catalogue();
    let mut page = String::from(concat!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        "<title>Lookout services</title>\n<style>\n",
        "body{font:16px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\n",
        "nav ul{columns:3;list-style:none;padding:0}section{border-top:1px solid #ddd;margin-top:2rem}\n",
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}\n",
        "pre{background:#f6f6f6;padding:.75rem;overflow:auto}code{font-size:90%}\n",
        "</style></head><body>\n<h1>Lookout services</h1>\n<nav>\n"
    ));
    for (category, members) in by_category(&services) {
        let _ = writeln!(page, "<h2>{}</h2><ul>", category.as_str());
        for reg in members {
            let _ = writeln!(
                page,
                "<li><a href=\"#{0}\">{1}</a> <code>{0}</code></li>",
                reg.name(),
                reg.title()
            );
        }
        page.push_str("</ul>\n");
    }
    page.push_str("</nav>\n");
    for reg in &services {
        let _ = writeln!(
            page,
            "<section id=\"{}\">\n{}</section>",
            reg.name(),
            markdown_to_html(&service_markdown(reg))
        );
    }
    page.push_str("</body></html>\n");
    page
}

/// The services of each category that has any, in the catalogue's order of categories.
pub fn by_category<'a>(services: &[&'a Registration]) -> Vec<(Category, Vec<&'a Registration>)> {
    Category::ALL
        .into_iter()
        .map(|category| {
            let members: Vec<&Registration> = services
                .iter()
                .filter(|r| r.category == category)
                .copied()
                .collect();
            (category, members)
        })
        .filter(|(_, members)| !members.is_empty())
        .collect()
}

/// What `lookout docs templates` prints: how to set a template, then the one table of
/// what templates can use ([`VARIABLES`]), which docs/TEMPLATES.md includes as it is.
pub fn templates_markdown() -> String {
    let parts: Vec<String> = Part::ALL.iter().map(|p| format!("`{}`", p.key())).collect();
    let mut md = format!(
        "# Message templates\n\n\
         A configured service's message can be written in your own words, part by part \
         ({}), with `template.PART = \"…\"` in its `[services.NAME]` table. What a \
         template writes is text: the service escapes it for its platform like its own \
         wording; `link(text, url)` makes a link. Templates are checked when the config \
         loads. See docs/TEMPLATES.md.\n\n",
        parts.join(", ")
    );
    md.push_str(&template_variables_table());
    md
}

/// The Markdown table of what a template can use.
pub fn template_variables_table() -> String {
    let mut table = String::from("| Name | What it is |\n|---|---|\n");
    for (name, what) in VARIABLES {
        let (name, what) = (name.replace('|', "\\|"), what.replace('|', "\\|"));
        let _ = writeln!(table, "| `{name}` | {what} |");
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_docs_include_the_table_as_it_is() {
        let docs = include_str!("../../docs/TEMPLATES.md");
        assert!(
            docs.contains(&template_variables_table()),
            "docs/TEMPLATES.md must hold the table `lookout docs templates` prints:\n{}",
            template_variables_table()
        );
    }

    #[test]
    fn rate_limits_are_documented() {
        assert_eq!(
            rate_limit_line(Some(RateLimit::CHAT_WEBHOOK)),
            "At most 1 request every 1s per webhook URL (scheme, host and path), in bursts \
             of up to 3; requests over that wait their turn (within the deadline)."
        );
        assert!(rate_limit_line(None).starts_with("none"));
    }
}
