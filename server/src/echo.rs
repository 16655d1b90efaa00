//! A service for the engine's own unit tests (the real ones live in the services crate,
//! which the engine cannot depend on): POSTs the raw payload to each of `urls`.

use lookout::prelude::*;
use lookout::request::forward_payload;

lookout::service! {
    /// Echo
    ///
    /// Test only.
    pub struct Echo;
}

const OPTIONS: &[OptionSpec] = &[
    OptionSpec::new("urls", Kind::UrlList, "Where to POST.").secret(),
    OptionSpec::string("secret", "Standard Webhooks secret: sign when set.")
        .secret()
        .optional(),
];

impl Service for Echo {
    fn events(&self) -> &'static [&'static str] {
        &["*"]
    }

    fn category(&self) -> lookout::Category {
        lookout::Category::Webhook
    }

    fn schema(&self) -> Schema {
        Schema::new(OPTIONS)
    }

    fn example(&self) -> &'static str {
        r#"urls = ["http://127.0.0.1:9/"]"#
    }

    fn build(&self, job: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        if job.event.model == "Nothing" {
            return Err(BuildError::Skip("nothing to say".into()));
        }
        forward_payload(job, &job.options.list("urls"), job.options.str("secret"))
    }
}
