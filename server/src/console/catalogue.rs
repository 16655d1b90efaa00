//! The catalogue: every service, its events and its install docs.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use super::auth::Session;
use super::pages::{Chrome, Refused, admin_only, render};
use lookout::service::{self, Registration};

struct CatalogueEntry {
    reg: &'static Registration,
    docs: String,
    events: String,
    rate_limit: String,
}

#[derive(Template)]
#[template(path = "console/catalogue.html")]
struct CataloguePage {
    chrome: Chrome,
    categories: Vec<(&'static str, Vec<CatalogueEntry>)>,
}

pub async fn catalogue(session: Session) -> Result<Response, Refused> {
    admin_only(&session)?;
    let services = service::catalogue();
    let categories = lookout::docs::by_category(&services)
        .into_iter()
        .map(|(category, members)| {
            let entries = members.into_iter().map(catalogue_entry).collect();
            (category.as_str(), entries)
        })
        .collect();
    let page = CataloguePage {
        chrome: Chrome::of(&session),
        categories,
    };
    Ok(render(StatusCode::OK, &page))
}

fn catalogue_entry(reg: &'static Registration) -> CatalogueEntry {
    CatalogueEntry {
        reg,
        docs: lookout::docs::markdown_to_html(&lookout::docs::service_markdown(reg)),
        events: reg.events.join(", "),
        rate_limit: lookout::docs::rate_limit_line(reg.rate_limit),
    }
}
