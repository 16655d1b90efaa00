//! `lookout config defaults`: a complete config file for `serve` and `worker` with every
//! setting at its default, each with what it does; a setting whose default is computed
//! (from the deadline, the open-file limit) or absent is shown commented out, with an
//! example.
//!
//! The document is config_defaults.toml, as it is printed. Its values are the defaults
//! the code runs with: tests/config_file.rs reads it back and compares every value with
//! the code's own, and checks that it names every key the tables take.

/// The whole document.
pub fn document() -> &'static str {
    include_str!("config_defaults.toml")
}
