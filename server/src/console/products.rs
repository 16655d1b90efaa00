//! The products, one product's page with its services, and the form that adds, edits,
//! switches, removes and test-sends a service.

use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use super::auth::Session;
use super::form::{self, ServiceForm};
use super::pages::{
    Chrome, Refused, admin_only, message, render, see_other, store_failed, visible_product,
};
use super::{Console, Posted};
use crate::shaping::fallback;
use crate::store::{Product, StoredInstance};
use lookout::config::check_name;
use lookout::dispatch::{new_delivery_id, run_service};
use lookout::payload::Event;
use lookout::service::{self, Registration};

#[derive(Template)]
#[template(path = "console/products.html")]
struct ProductsPage {
    chrome: Chrome,
    products: Vec<(String, usize)>,
    problem: Option<String>,
}

pub async fn products(
    State(console): State<Console>,
    session: Session,
) -> Result<Response, Refused> {
    admin_only(&session)?;
    Ok(products_page(&console, &session, StatusCode::OK, None).await)
}

async fn products_page(
    console: &Console,
    session: &Session,
    status: StatusCode,
    problem: Option<String>,
) -> Response {
    let products = match console.store.products().await {
        Ok(products) => products,
        Err(err) => return store_failed(&err),
    };
    let page = ProductsPage {
        chrome: Chrome::of(session),
        products: products
            .into_iter()
            .map(|p| (p.id, p.instances.len()))
            .collect(),
        problem,
    };
    render(status, &page)
}

pub async fn create_product(
    State(console): State<Console>,
    posted: Posted,
) -> Result<Response, Refused> {
    admin_only(&posted.session)?;
    let id = posted.field("id").unwrap_or_default().trim().to_owned();
    if let Err(problem) = check_name(&id) {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        return Ok(products_page(&console, &posted.session, status, Some(problem)).await);
    }
    if console.store.product(&id).await?.is_none() {
        console.store.put_product(&id, &[]).await?;
    }
    Ok(see_other(format!("/ui/products/{id}")))
}

/// One configured service as the product page lists it.
struct ServiceRow {
    name: String,
    service: String,
    title: &'static str,
    enabled: bool,
    /// The options that may be shown (secrets replaced), or why they are invalid.
    summary: String,
}

/// The outcome of a test send, per request.
struct TestResult {
    instance: String,
    model: String,
    rows: Vec<TestRow>,
}

struct TestRow {
    outcome: &'static str,
    status: String,
    duration_ms: u128,
    target: String,
    reason: String,
}

#[derive(Template)]
#[template(path = "console/product.html")]
struct ProductPage {
    chrome: Chrome,
    id: String,
    services: Vec<ServiceRow>,
    catalogue: Vec<(&'static str, &'static str)>,
    models: Vec<&'static str>,
    tested: Option<TestResult>,
}

pub async fn product(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &session, &id).await?;
    Ok(product_page(&session, product, None))
}

fn product_page(session: &Session, product: Product, tested: Option<TestResult>) -> Response {
    let services = product.instances.iter().map(service_row).collect();
    let page = ProductPage {
        chrome: Chrome::of(session),
        id: product.id,
        services,
        catalogue: service::catalogue()
            .into_iter()
            .map(|r| (r.name(), r.title()))
            .collect(),
        models: lookout::samples::ALL
            .iter()
            .map(|(model, _)| *model)
            .collect(),
        tested,
    };
    render(StatusCode::OK, &page)
}

fn service_row(stored: &StoredInstance) -> ServiceRow {
    let summary = match stored.redacted_options() {
        Some(serde_json::Value::Object(options)) => options
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => "options no longer valid: edit them".to_owned(),
    };
    ServiceRow {
        name: stored.name.clone(),
        service: stored.service.clone(),
        title: service::find(&stored.service).map_or("unknown service", |r| r.title()),
        enabled: stored.is_enabled(),
        summary,
    }
}

#[derive(Template)]
#[template(path = "console/service_form.html")]
struct ServiceFormPage {
    chrome: Chrome,
    product: String,
    title: &'static str,
    form: ServiceForm,
    docs: String,
}

fn form_page(
    session: &Session,
    product: &str,
    reg: &'static Registration,
    form: ServiceForm,
    status: StatusCode,
) -> Response {
    let page = ServiceFormPage {
        chrome: Chrome::of(session),
        product: product.to_owned(),
        title: reg.title(),
        form,
        docs: lookout::docs::markdown_to_html(&lookout::docs::service_markdown(reg)),
    };
    render(status, &page)
}

/// The service form again, with the problems of what was posted beside their fields.
fn form_refused(
    session: &Session,
    product: &str,
    reg: &'static Registration,
    form: ServiceForm,
) -> Response {
    form_page(
        session,
        product,
        reg,
        form,
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

#[derive(Deserialize)]
pub struct AddQuery {
    service: Option<String>,
}

pub async fn add_form(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<AddQuery>,
) -> Result<Response, Refused> {
    visible_product(&console, &session, &id).await?;
    let Some(reg) = query.service.as_deref().and_then(service::find) else {
        return Err(Refused::Missing("No such service."));
    };
    Ok(form_page(
        &session,
        &id,
        reg,
        ServiceForm::blank(reg),
        StatusCode::OK,
    ))
}

pub async fn add_service(
    State(console): State<Console>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &posted.session, &id).await?;
    let Some(reg) = posted.field("service").and_then(service::find) else {
        return Err(Refused::Missing("No such service."));
    };
    Ok(
        match ServiceForm::submit(reg, &posted.fields, None, &console.guard) {
            Ok(stored) if product.instances.iter().any(|i| i.name == stored.name) => {
                let mut form = ServiceForm::blank(reg);
                form.name = stored.name;
                form.name_problems
                    .push("the product already has a service by this name".into());
                form_refused(&posted.session, &id, reg, form)
            }
            Ok(stored) => save_checked(&console, &posted.session, &product, reg, stored).await,
            Err(form) => form_refused(&posted.session, &id, reg, *form),
        },
    )
}

/// Saves a service added or edited, unless its fallback is not one of the product's
/// services or makes a loop (then the form again, saying so beside the field).
async fn save_checked(
    console: &Console,
    session: &Session,
    product: &Product,
    reg: &'static Registration,
    stored: StoredInstance,
) -> Response {
    let problems = fallback::problems_in(Some(product), &stored);
    if problems.is_empty() {
        return save(console, &product.id, &stored).await;
    }
    let editing = product.instances.iter().any(|i| i.name == stored.name);
    let form = ServiceForm::refused(reg, &stored, editing, problems);
    form_refused(session, &product.id, reg, form)
}

async fn save(console: &Console, product: &str, stored: &StoredInstance) -> Response {
    match console.store.put_instance(product, stored).await {
        Ok(()) => see_other(format!("/ui/products/{product}")),
        Err(err) => store_failed(&err),
    }
}

/// The stored service `name` of a product the session may see, and its registration.
pub(super) async fn stored_service(
    console: &Console,
    session: &Session,
    id: &str,
    name: &str,
) -> Result<(Product, StoredInstance, &'static Registration), Refused> {
    let product = visible_product(console, session, id).await?;
    let Some(stored) = product.instances.iter().find(|i| i.name == name).cloned() else {
        return Err(Refused::Missing("No such service in this product."));
    };
    let Some(reg) = service::find(&stored.service) else {
        return Err(Refused::Missing("This build does not know that service."));
    };
    Ok((product, stored, reg))
}

pub async fn edit_form(
    State(console): State<Console>,
    session: Session,
    Path((id, name)): Path<(String, String)>,
) -> Result<Response, Refused> {
    let (_, stored, reg) = stored_service(&console, &session, &id, &name).await?;
    let form = ServiceForm::for_stored(reg, &stored);
    Ok(form_page(&session, &id, reg, form, StatusCode::OK))
}

pub async fn edit_service(
    State(console): State<Console>,
    Path((id, name)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, Refused> {
    let (product, previous, reg) = stored_service(&console, &posted.session, &id, &name).await?;
    Ok(
        match ServiceForm::submit(reg, &posted.fields, Some(&previous), &console.guard) {
            Ok(stored) => save_checked(&console, &posted.session, &product, reg, stored).await,
            Err(form) => form_refused(&posted.session, &id, reg, *form),
        },
    )
}

pub async fn switch_service(
    State(console): State<Console>,
    Path((id, name)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, Refused> {
    let (_, stored, _) = stored_service(&console, &posted.session, &id, &name).await?;
    let on = posted.field("on") == Some("true");
    Ok(save(&console, &id, &form::switched(&stored, on)).await)
}

pub async fn remove_service(
    State(console): State<Console>,
    Path((id, name)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, Refused> {
    visible_product(&console, &posted.session, &id).await?;
    console.store.remove_instance(&id, &name).await?;
    Ok(see_other(format!("/ui/products/{id}")))
}

/// Sends the sample event of the chosen model to one configured service, now, through
/// the engine with the server's settings (not through the outbox: nothing is stored),
/// and shows what happened on the product's page.
pub async fn test_service(
    State(console): State<Console>,
    Path((id, name)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, Refused> {
    let (product, _, _) = stored_service(&console, &posted.session, &id, &name).await?;
    let model = posted.field("model").unwrap_or("Item").to_owned();
    let Some(sample) = lookout::samples::for_model(&model) else {
        return Ok(message(
            StatusCode::BAD_REQUEST,
            "No sample for that model.",
        ));
    };
    // The service as the workers would send with it now.
    let routes = console
        .routes
        .at_least(console.store.as_ref(), &id, product.generation)
        .await?;
    let Some(route) = routes.as_ref().and_then(|routes| routes.route(&name)) else {
        return Err(Refused::Missing("No such service in this product."));
    };
    let rows = match (&route.instance, Event::parse(sample)) {
        (Ok(instance), Ok(event)) => {
            let event = Arc::new(event);
            let sent = run_service(instance, &event, new_delivery_id(), &console.transport).await;
            sent.iter().map(test_row).collect()
        }
        (Err(problems), _) => vec![TestRow {
            outcome: "failed",
            status: String::new(),
            duration_ms: 0,
            target: String::new(),
            reason: problems.clone(),
        }],
        (_, Err(err)) => return Ok(message(StatusCode::INTERNAL_SERVER_ERROR, &err.to_string())),
    };
    let tested = TestResult {
        instance: name,
        model,
        rows,
    };
    Ok(product_page(&posted.session, product, Some(tested)))
}

fn test_row(delivery: &lookout::delivery::Delivery) -> TestRow {
    let outcome = &delivery.outcome;
    TestRow {
        outcome: outcome.label(),
        status: outcome.status().map(|s| s.to_string()).unwrap_or_default(),
        duration_ms: delivery.duration.as_millis(),
        target: delivery.target.clone().unwrap_or_default(),
        reason: outcome.reason().unwrap_or_default().to_owned(),
    }
}
