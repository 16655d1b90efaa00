//! Lookout's services: one file per outside service, nothing else.
//!
//! Every `.rs` file in this folder is a module (no list to edit), and each registers
//! itself with `lookout::service!`. See CONTRIBUTING.md.

automod::dir!(pub "src");
