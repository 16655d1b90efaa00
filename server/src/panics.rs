//! A service for the worker's unit tests whose own `send` panics, as a buggy override
//! might: the worker must send through it like every other caller.

use lookout::{BuildError, Delivery, Job, Outgoing, Schema, Service, Transport};

lookout::service! {
    /// Panics
    ///
    /// Test only.
    pub struct Panics;

    category: Webhook,
    events: &["*"],
    limits: lookout::Limits::none("a test service"),
    schema: Schema::new(&[]),
    example: "",
}

#[lookout::async_trait]
impl Service for Panics {
    fn build(&self, _: &Job<'_>) -> Result<Vec<Outgoing>, BuildError> {
        Ok(Vec::new())
    }

    async fn send(&self, _: &Job<'_>, _: &Transport) -> Vec<Delivery> {
        panic!("boom")
    }
}
