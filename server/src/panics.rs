//! A service for the worker's unit tests whose own `send` panics, as a buggy override
//! might: the worker must send through it like every other caller.

use lookout::{BuildError, Delivery, Job, Outgoing, Schema, Service, Transport};

lookout::service! {
    /// Panics
    ///
    /// Test only.
    pub struct Panics;
}

#[lookout::async_trait]
impl Service for Panics {
    fn events(&self) -> &'static [&'static str] {
        &["*"]
    }

    fn category(&self) -> lookout::Category {
        lookout::Category::Webhook
    }

    fn schema(&self) -> Schema {
        Schema::new(&[])
    }

    fn example(&self) -> &'static str {
        ""
    }

    fn build(&self, _: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        Ok(Vec::new())
    }

    async fn send(&self, _: &Job<'_>, _: &Transport) -> Vec<Delivery> {
        panic!("boom")
    }
}
