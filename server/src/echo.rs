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
