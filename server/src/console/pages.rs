//! The console's pages: one handler and one template each.

use std::sync::Arc;
use std::time::Duration;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::auth::{self, ADMIN_SESSION, SESSION_COOKIE, SIGNIN_COOKIE, Scope, Session};
use super::form::{self, ServiceForm};
use super::{Console, Posted, chart};
use crate::clients::ClientAddr;
use crate::lanes::Waiting;
use crate::store::{
    ActivityWindow, AttemptRecord, DeliveryFilter, DeliveryRow, Millis, Product, Status,
    StoreError, StoredInstance, now_ms,
};
use lookout::config::check_name;
use lookout::delivery::Outcome;
use lookout::dispatch::{new_delivery_id, run_service};
use lookout::payload::Event;
use lookout::service::{self, Registration};

/// What every page's frame needs: the navigation a session may use, and the CSRF
/// token of its forms.
pub struct Chrome {
    pub admin: bool,
    pub csrf: String,
    /// The product a portal session is limited to (its only home).
    pub product: Option<String>,
}

impl Chrome {
    pub(super) fn of(session: &Session) -> Chrome {
        Chrome {
            admin: session.is_admin(),
            csrf: session.csrf.clone(),
            product: match &session.scope {
                Scope::Admin => None,
                Scope::Product(id) => Some(id.clone()),
            },
        }
    }
}

pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!("console template: {err}");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be drawn",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/message.html")]
struct MessagePage<'a> {
    status: u16,
    text: &'a str,
}

/// A page saying only `text` (errors, refusals).
pub fn message(status: StatusCode, text: &str) -> Response {
    let page = MessagePage {
        status: status.as_u16(),
        text,
    };
    render(status, &page)
}

/// Why a page is not shown to this session (made into a page at the end).
pub enum Refused {
    /// The session is limited to another product.
    NotYours,
    /// No such thing (what, in a sentence).
    Missing(&'static str),
    /// The store failed (logged when it happened).
    Store,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::NotYours => not_yours(),
            Refused::Missing(what) => message(StatusCode::NOT_FOUND, what),
            Refused::Store => message(
                StatusCode::SERVICE_UNAVAILABLE,
                "The store is not answering; try again.",
            ),
        }
    }
}

fn store_refused(err: &StoreError) -> Refused {
    tracing::error!("console: store: {err}");
    Refused::Store
}

impl From<StoreError> for Refused {
    fn from(err: StoreError) -> Refused {
        store_refused(&err)
    }
}

pub(super) fn store_failed(err: &StoreError) -> Response {
    store_refused(err).into_response()
}

fn not_yours() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "This session may not see that page: it is limited to one product.",
    )
}

/// A product's page is only for a session that may see it, and only if it exists.
pub(super) async fn visible_product(
    console: &Console,
    session: &Session,
    id: &str,
) -> Result<Product, Refused> {
    if !session.may_see(id) {
        return Err(Refused::NotYours);
    }
    if check_name(id).is_err() {
        return Err(Refused::Missing("No such product."));
    }
    match console.store.product(id).await {
        Ok(Some(product)) => Ok(product),
        Ok(None) => Err(Refused::Missing("No such product.")),
        Err(err) => Err(store_refused(&err)),
    }
}

fn admin_only(session: &Session) -> Result<(), Refused> {
    if session.is_admin() {
        Ok(())
    } else {
        Err(Refused::NotYours)
    }
}

fn see_other(to: String) -> Response {
    Redirect::to(&to).into_response()
}

pub async fn home(session: Session) -> Response {
    match &session.scope {
        Scope::Admin => see_other("/ui/products".into()),
        Scope::Product(id) => see_other(format!("/ui/products/{id}")),
    }
}

// --- signing in -----------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/signin.html")]
struct SignInPage {
    nonce: String,
    problem: Option<&'static str>,
}

fn signin_page(headers: &HeaderMap, status: StatusCode, problem: Option<&'static str>) -> Response {
    let nonce = auth::random_token();
    let cookie = auth::set_cookie(SIGNIN_COOKIE, &nonce, Duration::from_secs(3600), headers);
    let mut response = render(status, &SignInPage { nonce, problem });
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

pub async fn signin_form(headers: HeaderMap) -> Response {
    signin_page(&headers, StatusCode::OK, None)
}

/// Signs in with the admin token (the one `serve` runs with). The form's nonce must
/// match its cookie: another site cannot sign a visitor in to its own session.
pub async fn signin(
    State(console): State<Console>,
    client: Option<Extension<ClientAddr>>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let fields: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let nonce_ok = auth::cookie(&headers, SIGNIN_COOKIE)
        .is_some_and(|cookie| !cookie.is_empty() && auth::same(cookie, field("nonce")));
    if !nonce_ok {
        return signin_page(
            &headers,
            StatusCode::FORBIDDEN,
            Some("The form expired; try again."),
        );
    }
    let client = client.map(|Extension(ClientAddr(address))| address);
    if let Some(wait) = client.and_then(|client| console.guesses.wait_for(client)) {
        let mut page = signin_page(
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some("Too many wrong tokens from this address: wait a minute, then try again."),
        );
        let seconds = crate::guessing::retry_after_seconds(wait);
        page.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        return page;
    }
    if !console.keys.is_admin_token(field("token").trim()) {
        if let Some(client) = client {
            console
                .guesses
                .failed(client, crate::guessing::Door::Console);
        }
        return signin_page(
            &headers,
            StatusCode::UNAUTHORIZED,
            Some("That is not the admin token."),
        );
    }
    let until = now_ms() + ADMIN_SESSION.as_millis() as Millis;
    start_session(&console, &headers, (&Scope::Admin, None), until).await
}

/// Starts a session (kept in the store), sets its cookie and sends the visitor home.
async fn start_session(
    console: &Console,
    headers: &HeaderMap,
    (scope, link): (&Scope, Option<&str>),
    until: Millis,
) -> Response {
    let store = console.store.as_ref();
    let started = auth::start_session(store, &console.keys, scope, link, until).await;
    let value = match started {
        Ok(Some(value)) => value,
        Ok(None) => return link_refused(),
        Err(err) => return store_failed(&err),
    };
    let lasts = Duration::from_millis(until.saturating_sub(now_ms()).max(0) as u64);
    let cookie = auth::set_cookie(SESSION_COOKIE, &value, lasts, headers);
    let mut response = render(StatusCode::OK, &SignedIn {});
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// After signing in: a page that moves on by itself. A redirect would do, but a link
/// opened from another site (a portal link in an e-mail) would then arrive without the
/// SameSite=Strict cookie just set.
#[derive(Template)]
#[template(path = "console/signed_in.html")]
struct SignedIn {}

/// Ends the session, in the store: its cookie opens nothing from now on, wherever a
/// copy of it is (a form, so that another site cannot sign a visitor out).
pub async fn signout(
    State(console): State<Console>,
    headers: HeaderMap,
    posted: Posted,
) -> Response {
    if let Err(err) = console.store.end_session(&posted.session.id).await {
        return store_failed(&err);
    }
    let cookie = auth::set_cookie(SESSION_COOKIE, "", Duration::ZERO, &headers);
    let mut response = see_other("/ui/signin".into());
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

#[derive(Deserialize)]
pub struct LinkQuery {
    id: String,
    sig: String,
}

/// A portal link (`lookout portal-link`, or `make demo`'s sign-in link): a session of
/// its scope until the link expires or is revoked.
pub async fn open_link(
    State(console): State<Console>,
    headers: HeaderMap,
    Query(link): Query<LinkQuery>,
) -> Response {
    let store = console.store.as_ref();
    let checked = auth::check_link(
        store,
        &console.keys,
        (&link.id, &link.sig),
        console.max_link_ttl,
    );
    match checked.await {
        Ok(Some((scope, until))) => {
            start_session(&console, &headers, (&scope, Some(&link.id)), until).await
        }
        Ok(None) => link_refused(),
        Err(err) => store_failed(&err),
    }
}

/// The same answer for a forged, unknown, revoked, expired or too long link: the page
/// does not help anyone tell them apart.
fn link_refused() -> Response {
    message(
        StatusCode::FORBIDDEN,
        "This link is not valid, has expired or was revoked. Ask for a new one.",
    )
}

// --- catalogue --------------------------------------------------------------------------

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

// --- products ---------------------------------------------------------------------------

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

// --- the service form -------------------------------------------------------------------

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
            Ok(stored) => save(&console, &id, &stored).await,
            Err(form) => form_refused(&posted.session, &id, reg, *form),
        },
    )
}

async fn save(console: &Console, product: &str, stored: &StoredInstance) -> Response {
    match console.store.put_instance(product, stored).await {
        Ok(()) => see_other(format!("/ui/products/{product}")),
        Err(err) => store_failed(&err),
    }
}

/// The stored service `name` of a product the session may see, and its registration.
async fn stored_service(
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
    let (_, previous, reg) = stored_service(&console, &posted.session, &id, &name).await?;
    Ok(
        match ServiceForm::submit(reg, &posted.fields, Some(&previous), &console.guard) {
            Ok(stored) => save(&console, &id, &stored).await,
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
    let (status, reason) = match &delivery.outcome {
        Outcome::Delivered { status } => (Some(*status), String::new()),
        Outcome::Skipped { reason } => (None, reason.clone()),
        Outcome::Failed { reason, status } => (*status, reason.clone()),
        Outcome::Disabled { reason, status } => (Some(*status), reason.clone()),
    };
    TestRow {
        outcome: delivery.outcome.label(),
        status: status.map(|s| s.to_string()).unwrap_or_default(),
        duration_ms: delivery.duration.as_millis(),
        target: delivery.target.clone().unwrap_or_default(),
        reason,
    }
}

// --- deliveries -------------------------------------------------------------------------

/// Rows per page of the deliveries list.
const PAGE: usize = 50;

#[derive(Deserialize, Default)]
pub struct DeliveriesQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    service: String,
    /// How far back: `1h`, `2d` (empty: all).
    #[serde(default)]
    since: String,
    /// The keyset cursor: `UPDATED_AT~ID` of the last row of the previous page.
    #[serde(default)]
    after: String,
}

#[derive(Template)]
#[template(path = "console/deliveries.html")]
struct DeliveriesPage {
    chrome: Chrome,
    product: String,
    rows: Vec<DeliveryRow>,
    statuses: [Status; Status::ALL.len()],
    services: Vec<String>,
    query: DeliveriesQuery,
    /// The query string of the next page, if there may be one.
    next: Option<String>,
    problem: Option<String>,
    notice: Option<String>,
}

pub async fn deliveries(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &session, &id).await?;
    Ok(deliveries_page(&console, &session, product, query, None).await)
}

async fn deliveries_page(
    console: &Console,
    session: &Session,
    product: Product,
    query: DeliveriesQuery,
    notice: Option<String>,
) -> Response {
    let (filter, problem) = match delivery_filter(&product.id, &query) {
        Ok(filter) => (filter, None),
        Err(problem) => (DeliveryFilter::default(), Some(problem)),
    };
    let rows = if problem.is_some() {
        Vec::new()
    } else {
        match console.store.deliveries(&filter).await {
            Ok(rows) => rows,
            Err(err) => return store_failed(&err),
        }
    };
    let next = (rows.len() == PAGE).then(|| next_page(&query, rows.last()));
    let page = DeliveriesPage {
        chrome: Chrome::of(session),
        product: product.id,
        rows,
        statuses: Status::ALL,
        services: product
            .instances
            .iter()
            .map(|i| i.service.clone())
            .collect(),
        query,
        next: next.flatten(),
        problem,
        notice,
    };
    render(StatusCode::OK, &page)
}

fn delivery_filter(product: &str, query: &DeliveriesQuery) -> Result<DeliveryFilter, String> {
    let status = match query.status.as_str() {
        "" => None,
        given => Some(given.parse::<Status>()?),
    };
    let after = match query.after.split_once('~') {
        Some((at, id)) => Some((at.parse().map_err(|_| "a bad page cursor")?, id.to_owned())),
        None => None,
    };
    Ok(DeliveryFilter {
        status,
        service: Some(query.service.clone()).filter(|s| !s.is_empty()),
        product: Some(product.to_owned()),
        updated_since: since(&query.since)?,
        limit: PAGE,
        after,
    })
}

/// `1h` → the time one hour ago; empty → none.
fn since(text: &str) -> Result<Option<Millis>, String> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    let ago = humantime::parse_duration(text.trim())
        .map_err(|err| format!("since: {err} (write e.g. 30m, 2h, 7d)"))?;
    Ok(Some(now_ms() - crate::store::millis(ago)))
}

fn next_page(query: &DeliveriesQuery, last: Option<&DeliveryRow>) -> Option<String> {
    let last = last?;
    let cursor = format!("{}~{}", last.updated_at, last.id);
    Some(
        form_urlencoded::Serializer::new(String::new())
            .append_pair("status", &query.status)
            .append_pair("service", &query.service)
            .append_pair("since", &query.since)
            .append_pair("after", &cursor)
            .finish(),
    )
}

#[derive(Template)]
#[template(path = "console/delivery.html")]
struct DeliveryPage {
    chrome: Chrome,
    product: String,
    row: DeliveryRow,
    attempts: Vec<AttemptRecord>,
    payload: String,
    /// Why it is not being attempted right now, in words (queued ones only).
    waiting: Option<String>,
    /// The delivery of its order key it is held behind.
    behind: Option<String>,
    /// The deliveries whose events it carries (it superseded them, or it is their
    /// digest).
    replaces: Vec<DeliveryRow>,
}

/// How much of the event's payload a delivery's page shows.
const PAYLOAD_SHOWN: usize = 8 * 1024;

/// Delivery `delivery` with its attempts, if it is one of `product`'s and the session
/// may see that product.
async fn delivery_of(
    console: &Console,
    session: &Session,
    product: &str,
    delivery: &str,
) -> Result<(DeliveryRow, Vec<AttemptRecord>), Refused> {
    if !session.may_see(product) {
        return Err(Refused::NotYours);
    }
    match console.store.delivery(delivery).await? {
        Some(found) if found.0.product == product => Ok(found),
        _ => Err(Refused::Missing("No such delivery in this product.")),
    }
}

pub async fn delivery(
    State(console): State<Console>,
    session: Session,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, Refused> {
    let (row, attempts) = delivery_of(&console, &session, &id, &delivery).await?;
    let payload = console.store.event_payload(&row.event_id).await?;
    let payload = shown_payload(payload.as_deref().unwrap_or_default());
    let now = now_ms();
    let waiting = console.store.waiting(&row.id, now).await?;
    let behind = match &waiting {
        Some(Waiting::Held { behind }) => behind.clone(),
        _ => None,
    };
    let replaces = console.store.shaped_into(&row.id).await?;
    let page = DeliveryPage {
        chrome: Chrome::of(&session),
        product: id,
        row,
        attempts,
        payload,
        waiting: waiting.map(|w| w.describe(now)),
        behind,
        replaces,
    };
    Ok(render(StatusCode::OK, &page))
}

/// The payload indented, cut to [`PAYLOAD_SHOWN`] bytes.
fn shown_payload(payload: &str) -> String {
    let pretty = serde_json::from_str::<serde_json::Value>(payload)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| payload.to_owned());
    if pretty.len() <= PAYLOAD_SHOWN {
        return pretty;
    }
    let mut end = PAYLOAD_SHOWN;
    while !pretty.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n…", &pretty[..end])
}

pub async fn redeliver(
    State(console): State<Console>,
    Path((id, delivery)): Path<(String, String)>,
    posted: Posted,
) -> Result<Response, Refused> {
    delivery_of(&console, &posted.session, &id, &delivery).await?;
    console.store.redeliver(&delivery, now_ms()).await?;
    console.wake.notify_one();
    Ok(see_other(format!(
        "/ui/products/{id}/deliveries/{delivery}"
    )))
}

/// Makes every dead delivery of the product (within `since`, if given) due again.
pub async fn redeliver_dead(
    State(console): State<Console>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &posted.session, &id).await?;
    let given = posted.field("since").unwrap_or_default();
    let query = DeliveriesQuery {
        since: given.to_owned(),
        ..DeliveriesQuery::default()
    };
    let filter = match since(given) {
        Ok(updated_since) => DeliveryFilter {
            status: Some(Status::Dead),
            product: Some(id.clone()),
            updated_since,
            ..DeliveryFilter::default()
        },
        Err(problem) => {
            return Ok(
                deliveries_page(&console, &posted.session, product, query, Some(problem)).await,
            );
        }
    };
    let dead = console.store.deliveries(&filter).await?;
    let now = now_ms();
    for row in &dead {
        console.store.redeliver(&row.id, now).await?;
    }
    console.wake.notify_one();
    let notice = format!("{} dead delivery(ies) are due again.", dead.len());
    Ok(deliveries_page(&console, &posted.session, product, query, Some(notice)).await)
}

// --- overview ---------------------------------------------------------------------------

#[derive(Template)]
#[template(path = "console/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    product: String,
    hour: String,
    day: String,
    latency: String,
    p50: String,
    p99: String,
    queued: u64,
    dead: u64,
    by_status: Vec<(Status, u64)>,
    disabled: Vec<crate::store::DisabledTarget>,
}

const MINUTE: Millis = 60_000;
const QUARTER: Millis = 15 * MINUTE;

/// A stored time as people read it: UTC, to the millisecond.
pub fn when(at: &Millis) -> String {
    let time = std::time::UNIX_EPOCH + Duration::from_millis((*at).max(0) as u64);
    let shown = humantime::format_rfc3339_millis(time).to_string();
    shown.replacen('T', " ", 1).replace('Z', " UTC")
}

pub async fn overview(
    State(console): State<Console>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Response, Refused> {
    let product = visible_product(&console, &session, &id).await?;
    let now = now_ms();
    // Windows end with the current minute: an hour of minutes, a day of quarter hours.
    let end = now - now.rem_euclid(MINUTE) + MINUTE;
    let (hour_start, day_start) = (end - 60 * MINUTE, end - 96 * QUARTER);
    let window = ActivityWindow {
        since: day_start,
        bucket: MINUTE,
        durations_since: hour_start,
    };
    let activity = console.store.activity(&id, window).await?;
    let mut recent: Vec<u64> = activity
        .durations
        .iter()
        .filter(|(at, _)| *at >= hour_start)
        .map(|(_, d)| *d)
        .collect();
    let mut shown =
        |p| chart::percentile(&mut recent, p).map_or("–".to_owned(), |v| format!("{v} ms"));
    let (p50, p99) = (shown(50), shown(99));
    let count = |wanted: &dyn Fn(Status) -> bool| -> u64 {
        activity
            .by_status
            .iter()
            .filter(|(s, _)| wanted(*s))
            .map(|(_, n)| n)
            .sum()
    };
    let page = OverviewPage {
        chrome: Chrome::of(&session),
        hour: chart::outcomes(&activity, hour_start, MINUTE, 60),
        day: chart::outcomes(&activity, day_start, QUARTER, 96),
        latency: chart::latency(&activity, hour_start, MINUTE, 60),
        p50,
        p99,
        queued: count(&|s| s.is_queued()),
        dead: count(&|s| s == Status::Dead),
        by_status: activity.by_status.clone(),
        disabled: product.disabled,
        product: id,
    };
    Ok(render(StatusCode::OK, &page))
}

/// Enables again the targets of one configured service that answered 410 Gone (storing
/// the service again does that).
pub async fn reenable(
    State(console): State<Console>,
    Path(id): Path<String>,
    posted: Posted,
) -> Result<Response, Refused> {
    let name = posted.field("instance").unwrap_or_default().to_owned();
    let (_, stored, _) = stored_service(&console, &posted.session, &id, &name).await?;
    console.store.put_instance(&id, &stored).await?;
    Ok(see_other(format!("/ui/products/{id}/overview")))
}
