//! What every command of the CLI shares: the failure that ends it ([`Fatal`], exit 2),
//! and the async runtime the commands that serve or send run on ([`runtime`]).

/// A failure that ends the command: bad input or config (exit 2).
pub(crate) struct Fatal(pub(crate) String);

impl<E: std::fmt::Display> From<E> for Fatal {
    fn from(err: E) -> Self {
        Fatal(err.to_string())
    }
}

/// The multi-threaded runtime a command's async work runs on.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, Fatal> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
