//! A service for the engine's own unit tests (the real ones live in the services crate,
//! which the engine cannot depend on): POSTs the raw payload to each of `urls`.

use lookout::prelude::*;
use lookout::request::forward_payload;

lookout::service! {
    /// Echo
    ///
    /// Test only.
    pub struct Echo;

    category: Webhook,
    events: &["*"],
    limits: lookout::Limits::none("a test service"),
    schema: Schema::new(OPTIONS),
    example: r#"urls = ["http://127.0.0.1:9/"]"#,
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new("urls", Kind::UrlList, "Where to POST.").secret(),
    OptionSpec::string("secret", "Standard Webhooks secret: sign when set.")
        .secret()
        .optional(),
];

impl Service for Echo {
    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        if job.event.model == "Nothing" {
            return Err(BuildError::Skip("nothing to say".into()));
        }
        let secret = job.options.str("secret");
        forward_payload(job, &job.options.list("urls"), secret.as_slice())
    }
}

/// A stored event's payload for the server's unit tests.
pub const PAYLOAD: &str =
    r#"{"model":"Item","action":"created","product":{"id":1,"name":"P"},"attributes":{}}"#;

/// An echo service named `name`, posting to `url`, as the store keeps it.
pub fn instance(name: &str, url: String) -> crate::store::StoredInstance {
    crate::store::StoredInstance {
        name: name.to_owned(),
        service: "echo".to_owned(),
        options: serde_json::json!({ "urls": [url] })
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

/// Accepts event `id` ([`PAYLOAD`]) of product `p1` with one delivery, `msg_{id}`, to
/// its echo service `hook`.
pub async fn accept(store: &dyn crate::store::Store, id: &str) {
    let event = crate::store::NewEvent {
        id: id.to_owned(),
        product: "p1".to_owned(),
        payload: PAYLOAD.to_owned(),
        received_at: crate::store::now_ms(),
        idempotency: None,
        routed_with: None,
        trace_context: None,
        deliveries: vec![crate::store::NewDelivery::in_own_lane(
            "p1",
            &format!("msg_{id}"),
            "hook",
            "echo",
        )],
    };
    store.accept(&event).await.unwrap();
}
