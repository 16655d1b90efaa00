//! The `flowdock` service (Flowdock). Its Markdown install docs are the doc comments on
//! the struct registered below; `lookout docs flowdock` shows them.

use lookout::payload::{Block, Deploy, Favorite, User};
use lookout::prelude::*;
use lookout::text::wording::{self, full_name, sentence_case};

lookout::service! {
    /// Flowdock
    ///
    /// Sends every new item, comment, block, favorite and deploy to a flow's team inbox,
    /// exactly as Sprint.ly's Flowdock service did.
    ///
    /// **Flowdock has shut down**, and `api.flowdock.com` no longer takes messages. The
    /// service is kept for fidelity with the original Sprint.ly services and for servers
    /// that still speak Flowdock's team-inbox API: point `base_url` at one.
    ///
    /// 1. `auth_token` is the API token of the flow to post to (Flowdock listed them at
    ///    `https://www.flowdock.com/account/tokens`). It is a secret: it is part of the
    ///    address every message is posted to, and reports show `[redacted]` in its place.
    /// 2. Leave `base_url` at the original endpoint, `https://api.flowdock.com`, or set it
    ///    to a server that accepts the same API.
    ///
    /// Each event becomes one form `POST` to `{base_url}/v1/messages/team_inbox/{auth_token}`
    /// with `source=Sprintly`, the sender's email address and name, a subject, the message
    /// as HTML (text from Sprint.ly HTML-escaped), the product name as `project` (every run
    /// of characters other than ASCII letters, digits, whitespace and `_` replaced by
    /// `_`), `format=html`, the item's tags (one `tags` field each) and a link to the item.
    /// Deploys list the deployed items as release notes. Only newly created things are
    /// sent (`*.created`).
    pub struct Flowdock;

    category: Chat,
    limits: Limits::none(
        "Flowdock's Push API documented no size limit.",
    ),
    schema: Schema::new(OPTIONS),
    example: r#"auth_token = "0123456789abcdef0123456789abcdef""#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::string("auth_token", "The flow's API token.").secret(),
    OptionSpec::url(
        "base_url",
        "Where Flowdock's API lives (Flowdock itself has shut down).",
    )
    .public()
    .default("https://api.flowdock.com"),
];

impl Service for Flowdock {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        let fields = message(job.event)?.into_fields(&job.event.product.name);
        let token = job.options.str("auth_token").unwrap_or_default();
        let base = job.options.str("base_url").unwrap_or_default();
        let url = endpoint(base, &["v1", "messages", "team_inbox", token])
            .map_err(|e| BuildError::Invalid(format!("base_url: {e}")))?;
        Ok(vec![HttpRequest::post(url).form(fields).into()])
    }
}

/// One team-inbox message, before it becomes form fields.
struct InboxMessage<'a> {
    sender: &'a User,
    /// Deploys went out without `from_name`.
    named: bool,
    /// Plain text.
    subject: String,
    /// HTML, user text escaped.
    content: String,
    tags: &'a [String],
    link: Option<&'a str>,
}

impl InboxMessage<'_> {
    /// The form fields, in the order the API documents them. A missing email address is
    /// left out, as the original's HTTP library left out empty values.
    fn into_fields(self, product: &str) -> Vec<(&'static str, String)> {
        let mut fields = vec![("source", "Sprintly".to_owned())];
        if let Some(email) = &self.sender.email {
            fields.push(("from_address", email.clone()));
        }
        if self.named {
            fields.push(("from_name", full_name(self.sender)));
        }
        fields.push(("subject", self.subject));
        fields.push(("content", self.content));
        fields.push(("project", project(product)));
        fields.push(("format", "html".to_owned()));
        // One field per tag, as the original sent its list.
        fields.extend(self.tags.iter().map(|tag| ("tags", tag.clone())));
        if let Some(link) = self.link {
            fields.push(("link", link.to_owned()));
        }
        fields
    }
}

fn message(event: &Event) -> Result<InboxMessage<'_>, BuildError> {
    let product = event.product.name.as_str();
    let h = escape::html;
    Ok(match wording::attributes(event)? {
        Attributes::Item(item) => InboxMessage {
            sender: &item.created_by,
            named: true,
            subject: format!(
                "New {} \"{}\" (#{}) in {product}",
                item.kind, item.title, item.number
            ),
            content: item_content(item),
            tags: &item.tags,
            link: Some(&item.short_url),
        },
        Attributes::Comment(comment) => InboxMessage {
            sender: &comment.created_by,
            named: true,
            subject: format!(
                "commented on {} \"{}\" in {product}",
                comment.item.kind, comment.item.title
            ),
            // The whole comment, as written (the original neither cut it nor cleaned
            // its mentions).
            content: format!("\"{}\"", h(&comment.body)),
            tags: &comment.item.tags,
            link: Some(&comment.item.short_url),
        },
        Attributes::Block(block) => InboxMessage {
            sender: &block.user,
            named: true,
            subject: format!(
                "{product} {} \"{}\" is blocking {} \"{}\"",
                block.item.kind, block.item.title, block.blocked.kind, block.blocked.title
            ),
            content: block_content(block, product),
            tags: &block.item.tags,
            link: Some(&block.item.short_url),
        },
        Attributes::Favorite(favorite) => InboxMessage {
            sender: &favorite.user,
            named: true,
            // The same sentence twice: as text, and as HTML.
            subject: favorite_line(favorite, product, str::to_owned),
            content: favorite_line(favorite, product, h),
            tags: &favorite.item.tags,
            link: Some(&favorite.item.short_url),
        },
        Attributes::Deploy(deploy) => InboxMessage {
            sender: &deploy.user,
            named: false,
            // "items" even for one, as the original wrote it.
            subject: format!(
                "{} deployed {} items in {product} to {}",
                full_name(&deploy.user),
                deploy.items.len(),
                deploy.environment
            ),
            content: release_notes(deploy),
            tags: &[],
            link: None,
        },
        // The inbox wants a sender: Lookout's alerts go to chat services instead.
        Attributes::Alert(_) | Attributes::Other(_) => {
            return Err(BuildError::no_message_for(event));
        }
    })
}

/// `Joe Stump created story "Title"`, the assignment, and the description as a quote.
fn item_content(item: &Item) -> String {
    let h = escape::html;
    let mut content = format!(
        "{} created {} \"{}\"",
        h(&full_name(&item.created_by)),
        h(&item.kind),
        h(&item.title)
    );
    if let Some(assignee) = item
        .assigned_to
        .as_ref()
        .filter(|a| a.id != item.created_by.id)
    {
        content.push_str(&format!(" and assigned it to {}.", h(&full_name(assignee))));
    }
    if let Some(description) = item.description.as_deref().filter(|d| !d.is_empty()) {
        content.push_str(&format!(
            "<p><blockquote>\"{}\"</blockquote></p>",
            h(description)
        ));
    }
    content
}

/// `Joe Stump indicated task "A" in product (assigned to …) is blocking story "B"`.
fn block_content(block: &Block, product: &str) -> String {
    let h = escape::html;
    let mut content = format!(
        "{} indicated {} \"{}\" in {}",
        h(&full_name(&block.user)),
        h(&block.item.kind),
        h(&block.item.title),
        h(product)
    );
    if let Some(owner) = &block.item.assigned_to {
        content.push_str(&format!(" (assigned to {}.)", h(&full_name(owner))));
    }
    content.push_str(&format!(
        " is blocking {} \"{}\"",
        h(&block.blocked.kind),
        h(&block.blocked.title)
    ));
    content
}

/// `Joe Stump favorited story "Title" in product`, each piece of user text through `text`.
fn favorite_line(favorite: &Favorite, product: &str, text: impl Fn(&str) -> String) -> String {
    format!(
        "{} favorited {} \"{}\" in {}",
        text(&full_name(&favorite.user)),
        text(&favorite.item.kind),
        text(&favorite.item.title),
        text(product)
    )
}

/// `Production release notes:` and a list of links to the deployed items.
fn release_notes(deploy: &Deploy) -> String {
    let items: String = deploy
        .items
        .iter()
        .map(|item| {
            let line = Rich::link(
                format!("{} #{}", sentence_case(&item.kind), item.number),
                &item.short_url,
            )
            .push(format!(": {}", item.title));
            format!("<li>{}</li>", Dialect::HTML.rich(&line))
        })
        .collect();
    format!(
        "{} release notes:\n<ul>{items}</ul>",
        escape::html(&sentence_case(&deploy.environment))
    )
}

/// Flowdock's `project` allows only ASCII letters, digits, whitespace and `_`: every run
/// of anything else becomes one `_` (`sprint.ly` → `sprint_ly`).
fn project(name: &str) -> String {
    // Python's ASCII `\s` also counts the vertical tab, which Rust's ASCII whitespace does not.
    let allowed =
        |c: char| c.is_ascii_alphanumeric() || c == '_' || c.is_ascii_whitespace() || c == '\u{0b}';
    let mut out = String::with_capacity(name.len());
    let mut in_run = false;
    for c in name.chars() {
        if allowed(c) {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lookout::{Body, Instance};
    use lookout_testkit::{
        CaptureServer, MARKUP_TITLE, Reply, assert_hidden, deliver_one, dispatch_one, fixture,
        fixture_json,
    };
    use serde_json::{Value, json};

    const TOKEN: &str = "f10wt0ken5ecret";

    fn options(base_url: &str, token: &str) -> Value {
        json!({"auth_token": token, "base_url": base_url})
    }

    fn instance(base_url: &str, token: &str) -> Instance {
        let options = options(base_url, token);
        Instance::new("flowdock", "flowdock", options.as_object().unwrap()).unwrap()
    }

    /// The form fields Flowdock would receive for a fixture (built, not sent).
    fn form(name: &str) -> Vec<(String, String)> {
        let instance = instance("https://api.flowdock.com", TOKEN);
        let event = fixture(name);
        let job = instance.job(&event, "msg_test");
        let outgoing = Flowdock.build(&job).unwrap();
        let [Outgoing::Http(request)] = outgoing.as_slice() else {
            panic!("{name}: expected one request");
        };
        let Body::Form(fields) = &request.body else {
            panic!("{name}: not a form");
        };
        fields.clone()
    }

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn field(fields: &[(String, String)], name: &str) -> Option<String> {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posts_the_original_form_end_to_end() {
        let options = |server: &CaptureServer| options(&server.url(), TOKEN);
        let (report, got) = deliver_one("flowdock", options, &fixture_json("block"), TOKEN).await;
        assert_eq!(got.method, "POST");
        assert_eq!(got.path, format!("/v1/messages/team_inbox/{TOKEN}"));
        assert_eq!(
            got.header("content-type"),
            Some("application/x-www-form-urlencoded")
        );
        let blocked = "As a customer, I want to be notified before my CC expires so that I can \
                       update my billing details.";
        let blocking = "Change the spinner to our glowing running man.";
        assert_eq!(
            got.form(),
            pairs(&[
                ("source", "Sprintly"),
                ("from_address", "joe@example.com"),
                ("from_name", "Joe Stump"),
                (
                    "subject",
                    &format!("sprint.ly task \"{blocking}\" is blocking story \"{blocked}\"")
                ),
                (
                    "content",
                    &format!(
                        "Joe Stump indicated task \"{blocking}\" in sprint.ly \
                         (assigned to Craig Pattison.) is blocking story \"{blocked}\""
                    )
                ),
                ("project", "sprint_ly"),
                ("format", "html"),
                ("tags", "ios"),
                ("tags", "ipad"),
                ("link", "http://sprint.ly/i/1111/1111/"),
            ])
        );

        let shown = serde_json::to_string(&report).unwrap();
        assert!(shown.contains("team_inbox/[redacted]"), "{shown}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_token_stays_out_of_errors_and_previews() {
        let server = CaptureServer::start();
        // A token with characters that must be encoded in a path is redacted too.
        for token in [TOKEN, "tok/en ?#%"] {
            // The server echoes the token back in its error, as some APIs do.
            server.script("/", [Reply::status(500).body(format!("bad token {token}"))]);
            let options = options(&server.url(), token);
            let report = dispatch_one("flowdock", options, &fixture_json("item")).await;
            assert!(report.has_failures(), "{report:?}");
            let shown = assert_hidden(&report, token);
            assert!(
                !shown.contains("tok/en") && !shown.contains("tok%2Fen"),
                "{shown}"
            );
            assert!(shown.contains("bad token [redacted]"), "{shown}");

            let flowdock = instance(&server.url(), token);
            let preview = lookout::dispatch::preview_one(&fixture("item"), &flowdock);
            assert_eq!(
                preview.requests[0].url,
                format!("{}/v1/messages/team_inbox/[redacted]", server.url())
            );
        }
    }

    #[test]
    fn items_name_the_assignee_and_quote_the_description() {
        let fields = form("item-no-last-name");
        assert_eq!(
            field(&fields, "subject").unwrap(),
            "New task \"Document the outbound services API\" (#1212) in sprint.ly"
        );
        // Names without a last name are just the first name.
        assert_eq!(field(&fields, "from_name").unwrap(), "Joe");
        assert_eq!(
            field(&fields, "content").unwrap(),
            "Joe created task \"Document the outbound services API\" and assigned it to \
             Craig.<p><blockquote>\"Write the API docs for the new endpoints.\"</blockquote></p>"
        );
        // Self-assigned, no description, no tags: none of those parts.
        let fields = form("item");
        assert_eq!(
            field(&fields, "content").unwrap(),
            "Joe Stump created story \"As a user, I want outbound service hooks so that I \
             will see new items announced in Slack or HipChat.\""
        );
        assert!(field(&fields, "tags").is_none());
        assert_eq!(
            field(&fields, "link").unwrap(),
            "http://sprint.ly/i/1/116550/"
        );
    }

    #[test]
    fn comments_quote_the_whole_body() {
        let fields = form("comment-mentions");
        assert_eq!(
            field(&fields, "subject").unwrap(),
            "commented on task \"Change the spinner to our glowing running man.\" in sprint.ly"
        );
        assert_eq!(
            field(&fields, "content").unwrap(),
            "\"@[Craig Pattison](pk:2222) can you pair with @[Joe Stump](pk:1111) on this?\""
        );
        let fields = form("comment-unicode");
        assert!(
            field(&fields, "content")
                .unwrap()
                .ends_with("see the attached video. 👀\"")
        );
    }

    #[test]
    fn favorites_use_one_sentence_for_subject_and_content() {
        let fields = form("favorite");
        let line = "Joe Stump favorited story \"As a user, I want a global filter UI so that I \
                    can use filters on the dashboard and timelines.\" in sprint.ly";
        assert_eq!(field(&fields, "subject").unwrap(), line);
        assert_eq!(field(&fields, "content").unwrap(), line);
    }

    #[test]
    fn deploys_list_release_notes() {
        assert_eq!(
            form("deploy"),
            pairs(&[
                ("source", "Sprintly"),
                ("from_address", "joe@example.com"),
                (
                    "subject",
                    "Joe Stump deployed 3 items in sprint.ly to production"
                ),
                (
                    "content",
                    "Production release notes:\n<ul>\
                     <li><a href=\"http://sprint.ly/i/1111/1212/\">Story #1212</a>: As a user, \
                     I want outbound service hooks so that I will see new items announced in \
                     Slack or HipChat.</li>\
                     <li><a href=\"http://sprint.ly/i/1111/1213/\">Task #1213</a>: Change the \
                     spinner to our glowing running man.</li>\
                     <li><a href=\"http://sprint.ly/i/1111/1214/\">Defect #1214</a>: Webhook \
                     retries give up too early</li></ul>"
                ),
                ("project", "sprint_ly"),
                ("format", "html"),
            ])
        );
        assert_eq!(
            field(&form("deploy-single"), "subject").unwrap(),
            "Joe Stump deployed 1 items in sprint.ly to staging"
        );
    }

    #[test]
    fn content_escapes_html_and_subject_stays_text() {
        let fields = form("item-markup");
        assert_eq!(
            field(&fields, "subject").unwrap(),
            format!("New story \"{MARKUP_TITLE}\" (#1212) in sprint.ly")
        );
        assert_eq!(
            field(&fields, "content").unwrap(),
            format!("Joe Stump created story \"{}\"", escape::html(MARKUP_TITLE))
        );
        assert!(
            field(&fields, "content")
                .unwrap()
                .contains("&lt;b&gt;&amp;&quot;x&quot;")
        );
        let tags: Vec<String> = fields
            .iter()
            .filter(|(k, _)| k == "tags")
            .map(|(_, v)| v.clone())
            .collect();
        assert_eq!(tags, ["<script>", "a&b"]);
    }

    #[test]
    fn project_names_keep_only_what_flowdock_allows() {
        assert_eq!(project("sprint.ly"), "sprint_ly");
        assert_eq!(project("My App (beta)!"), "My App _beta_");
        assert_eq!(project("a--b__c"), "a_b__c");
        assert_eq!(project("Café 日本"), "Caf_ _");
        assert_eq!(project("tab\there"), "tab\there");
    }
}
